from __future__ import annotations

import struct
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import deny_listing, frame_level, stating_frames, stating_rate, write_video
from vidrnn.sampling import SamplingSpec
from vidrnn.video import (
    CutShort, VideoReadError, iter_frames, probe, read_frames, read_sampled, walk_visible,
)


def test_probe_reports_count_rate_size_and_duration(short_video: Path) -> None:
    info = probe(short_video)
    assert (info.num_frames, info.fps, info.width, info.height) == (30, 25.0, 64, 48)
    assert info.duration == pytest.approx(1.2)
    assert probe(short_video, count=True).counted


def test_read_frames_returns_rgb_uint8_in_requested_order_with_repeats(short_video: Path) -> None:
    frames = read_frames(short_video, [7, 2, 2, 29])
    assert frames.shape == (4, 48, 64, 3) and frames.dtype == np.uint8
    assert [frame_level(f) for f in frames] == [7, 2, 2, 29]


def test_frames_are_rgb_not_bgr(tmp_path: Path) -> None:
    path = tmp_path / "red.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    for _ in range(3):
        writer.write(np.dstack([np.zeros((32, 32)), np.zeros((32, 32)), np.full((32, 32), 255)]).astype(np.uint8))
    writer.release()
    red, green, blue = read_frames(path, [1])[0].reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 40 and blue < 40


def test_resize_at_decode_keeps_aspect_for_short_side_and_obeys_exact_size(short_video: Path) -> None:
    assert read_frames(short_video, [0], size=24).shape == (1, 24, 32, 3)
    assert read_frames(short_video, [0], size=(20, 30)).shape == (1, 20, 30, 3)


def test_iter_frames_streams_bounded_chunks_covering_every_frame(short_video: Path) -> None:
    chunks = list(iter_frames(short_video, chunk_size=8))
    assert [len(frames) for _, frames in chunks] == [8, 8, 8, 6]
    positions = np.concatenate([positions for positions, _ in chunks])
    assert positions.tolist() == list(range(30))
    assert [frame_level(f) for _, frames in chunks for f in frames] == list(range(30))


def test_image_folder_reads_through_the_same_interface(tmp_path: Path) -> None:
    folder = tmp_path / "seq"
    folder.mkdir()
    for index in range(5):
        cv2.imwrite(str(folder / f"{index + 1:04d}.png"), np.full((16, 24, 3), 8 * index, dtype=np.uint8))
    (folder / "notes.txt").write_text("not a frame")
    info = probe(folder)
    assert (info.num_frames, info.width, info.height) == (5, 24, 16)
    assert [frame_level(f) for f in read_frames(folder, [4, 0])] == [4, 0]


def test_frames_of_another_size_come_out_at_the_first_ones_or_are_refused_naming_the_frame(tmp_path: Path) -> None:
    """A stream may change resolution and a folder of images mix sizes: for classification the frames are resized to
    one size; frames whose ground truth is in their own pixels (tracking) ask for frame_exact, and a stretched frame,
    whose box would no longer match it, stops the read with the reason."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    cv2.imwrite(str(folder / "0001.png"), np.zeros((24, 32, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "0002.png"), np.full((48, 64, 3), 200, dtype=np.uint8))
    frames = read_frames(folder, [0, 1])
    assert frames.shape == (2, 24, 32, 3) and (frames[1] == 200).all()
    assert read_frames(folder, [0, 1], size=16).shape == (2, 16, 21, 3)
    for size in (None, 16):
        with pytest.raises(VideoReadError, match="frame 1 is 64x48 pixels, the first frame read 32x24") as error:
            read_frames(folder, [0, 1], size=size, frame_exact=True)
        assert error.value.path == str(folder)
    assert read_frames(folder, [1], frame_exact=True).shape == (1, 48, 64, 3)  # alone, it reads at its own size


def test_an_image_folder_passes_over_hidden_files(tmp_path: Path) -> None:
    """macOS writes ``._0001.jpg`` beside every frame copied from a Mac: not a frame (and not an image)."""
    folder = tmp_path / "seq"
    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f"{index + 1:04d}.jpg"), np.full((8, 8, 3), 60 * index, dtype=np.uint8))
        (folder / f"._{index + 1:04d}.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    assert probe(folder, count=True).num_frames == 3
    assert read_frames(folder, [0, 1, 2]).shape == (3, 8, 8, 3)


def test_paths_with_spaces_and_non_ascii_characters(tmp_path: Path) -> None:
    path = write_video(tmp_path / "ünïcødé dir" / "my clip é.avi", 4)
    assert read_frames(path, [3]).shape[0] == 1


def test_read_sampled_recovers_when_container_overstates_length(tmp_path: Path, short_video: Path) -> None:
    asked = []

    def every_frame_of_40(info):
        asked.append(info.num_frames)
        return np.arange(40 if len(asked) == 1 else info.num_frames)

    frames, indices, info = read_sampled(short_video, every_frame_of_40)
    assert asked == [30, 30] and len(frames) == 30 and info.counted


@pytest.mark.parametrize("stated", [41, 39])
def test_frames_kept_of_a_choice_are_those_of_the_choice_made_over_the_real_length(tmp_path: Path,
                                                                                    stated: int) -> None:
    """Evaluation decodes the centred steps of a sampling's frames (``keep``). With every frame chosen, a container
    stating 41 of 40 frames re-plans over 40 (its last choice lies past the end) where the 8 kept would not: they must
    still come from the choice over the real 40 frames, as extraction's cached sequence does (one stating 39 re-plans
    either way: the probe could not choose frame 39)."""
    video = stating_frames(write_video(tmp_path / "v.avi", 40), stated)
    every_frame = SamplingSpec(strategy="all", short_side=None)

    def choose(info):
        return every_frame.indices(info.num_frames, info.fps)

    whole, chosen, info = read_sampled(video, choose)
    kept, kept_indices, kept_info = read_sampled(video, choose, keep=lambda count: np.arange(count)[::5])
    np.testing.assert_array_equal(kept_indices, chosen[::5])
    np.testing.assert_array_equal(kept, whole[::5])
    assert len(chosen) == kept_info.num_frames == info.num_frames == 40


@pytest.mark.realdata
def test_real_mpeg1_container_understates_its_frame_count_and_reader_counts_truth(shared_data: Path) -> None:
    video = shared_data / "tracking" / "tld" / "01_david" / "david.mpg"
    assert probe(video).num_frames == 760  # what the container claims
    assert probe(video, count=True).num_frames == 761
    spec = SamplingSpec(strategy="all", short_side=None)
    frames, indices, info = read_sampled(video, lambda info: spec.indices(info.num_frames, info.fps))
    assert len(frames) == 761 and indices[-1] == 760 and info.num_frames == 761  # the frame past the stated end too


@pytest.mark.realdata
def test_sequential_selection_matches_full_decode_on_real_xvid(shared_data: Path) -> None:
    video = sorted((shared_data / "ucf101-mini" / "UCF-101" / "BaseballPitch").glob("*.avi"))[0]
    everything = np.concatenate([frames for _, frames in iter_frames(video, size=64)])
    wanted = [len(everything) // 2, 3, len(everything) - 1]
    np.testing.assert_array_equal(read_frames(video, wanted, size=64), everything[wanted])


def _bad_inputs(tmp_path: Path, short_video: Path) -> dict[str, tuple[Path, str]]:
    zero = tmp_path / "zero.avi"
    zero.touch()
    noise = tmp_path / "noise.avi"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    text = tmp_path / "readme.txt"
    text.write_text("this is not a video\n" * 50)
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(short_video.read_bytes()[: short_video.stat().st_size * 2 // 3])
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()
    # A link whose target was moved: `ls` lists it, so "no such file" sent the user looking for the wrong thing.
    broken = tmp_path / "linked.avi"
    broken.symlink_to(tmp_path / "moved" / "clip.avi")
    loop = tmp_path / "loop.avi"
    loop.symlink_to("loop.avi")
    return {
        "missing": (tmp_path / "nope.avi", "no such file"),
        "directory": (empty_dir, "directory without image files"),
        "zero-byte": (zero, "empty file"),
        "random bytes": (noise, "cannot be opened"),
        "text": (text, "text file"),
        "truncated": (truncated, "ends after"),
        "broken link": (broken, f"is a symbolic link to {tmp_path / 'moved' / 'clip.avi'}, which does not exist"),
        "link loop": (loop, "is a symbolic link in a loop"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "zero-byte", "random bytes", "text", "truncated",
                                  "broken link", "link loop"])
def test_bad_input_raises_one_error_type_naming_path_and_reason(tmp_path: Path, short_video: Path, case: str) -> None:
    path, reason = _bad_inputs(tmp_path, short_video)[case]
    with pytest.raises(VideoReadError) as caught:
        read_frames(path, range(0, 30, 3))
    assert caught.value.path == str(path)
    assert reason in caught.value.reason
    assert str(path) in str(caught.value)


def test_asking_for_more_frames_than_the_video_has(short_video: Path) -> None:
    with pytest.raises(VideoReadError, match="asked for frame 45 but the video ends after 30 frames") as caught:
        read_frames(short_video, [1, 45])
    assert caught.value.frames_available == 30


def test_negative_index_and_empty_request_are_programming_errors(short_video: Path) -> None:
    with pytest.raises(ValueError):
        read_frames(short_video, [-1])
    with pytest.raises(ValueError):
        read_frames(short_video, [])


def test_image_folders_read_numbered_frames_in_numeric_order(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in (1, 2, 10, 11, 3):  # as text: 1, 10, 11, 2, 3
        cv2.imwrite(str(folder / f"frame{number}.png"), np.full((8, 8, 3), 8 * number, dtype=np.uint8))
    assert [frame_level(frame) for frame in read_frames(folder, range(5))] == [1, 2, 3, 10, 11]


@pytest.mark.parametrize("level", [None, "24"])
def test_ffmpegs_own_messages_which_name_no_file_stay_off_the_terminal_unless_asked_for(tmp_path: Path,
                                                                                      level: str | None) -> None:
    import os
    import subprocess
    import sys

    broken = tmp_path / "phone.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(4000))  # an MP4 cut before its index
    environment = {key: value for key, value in os.environ.items() if key != "OPENCV_FFMPEG_LOGLEVEL"}
    if level is not None:
        environment["OPENCV_FFMPEG_LOGLEVEL"] = level
    script = ("import sys\nfrom vidrnn.video import VideoReadError, read_frames\ntry:\n    read_frames(sys.argv[1], [0])\n"
              "except VideoReadError as error:\n    print(error)\n")
    result = subprocess.run([sys.executable, "-c", script, str(broken)], capture_output=True, text=True, env=environment,
                            check=True)
    assert str(broken) in result.stdout  # vidrnn's own message, with the file
    assert ("moov atom not found" in result.stdout + result.stderr) == (level is not None)


def _blank_middle_jpeg(path: Path) -> Path:
    """Overwrite the middle frame of an MJPG AVI, from its JPEG start marker to its end marker, with zeros: a damaged
    stretch whose packet holds no JPEG at all."""
    data = bytearray(path.read_bytes())
    starts = [index for index in range(len(data) - 2) if data[index:index + 3] == b"\xff\xd8\xff"]
    start = starts[len(starts) // 2]
    end = data.index(b"\xff\xd9", start) + 2
    data[start:end] = bytes(end - start)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("level", [None, "24"])
def test_ffmpegs_fatal_level_messages_on_a_damaged_mjpg_stay_off_the_terminal_unless_asked_for(
        tmp_path: Path, level: str | None) -> None:
    """FFmpeg's MJPEG decoder says "No JPEG data found in image" at its fatal level (8), which a log level of 8 still
    printed, on stdout among the command's own output."""
    import os
    import subprocess
    import sys

    damaged = _blank_middle_jpeg(write_video(tmp_path / "damaged.avi", 9, size=(32, 32)))
    environment = {key: value for key, value in os.environ.items() if key != "OPENCV_FFMPEG_LOGLEVEL"}
    if level is not None:
        environment["OPENCV_FFMPEG_LOGLEVEL"] = level
    result = subprocess.run([sys.executable, "-m", "vidrnn", "probe", "--count", str(damaged)], capture_output=True,
                            text=True, env=environment, check=True)
    assert str(damaged) in result.stdout
    assert ("No JPEG data found in image" in result.stdout + result.stderr) == (level is not None)


def test_a_video_whose_container_understates_its_length_is_sampled_to_its_real_end(tmp_path: Path) -> None:
    parts = []  # three MPEG-TS streams joined, as camcorders and recorders write them: each restarts its timestamps
    for part in range(3):
        path = tmp_path / f"part{part}.ts"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp2v"), 25, (64, 48))
        for index in range(10 * part, 10 * part + 10):
            writer.write(np.full((48, 64, 3), 8 * index, dtype=np.uint8))
        writer.release()
        parts.append(path.read_bytes())
    joined = tmp_path / "recording.ts"
    joined.write_bytes(b"".join(parts))
    assert probe(joined).num_frames < 30  # the container's estimate
    spec = SamplingSpec(strategy="segments", num_segments=6, short_side=None)
    frames, indices, info = read_sampled(joined, lambda info: spec.indices(info.num_frames, info.fps))
    assert info.num_frames == 30 and indices.tolist() == spec.indices(30, 25.0).tolist()
    assert [frame_level(frame) for frame in frames] == indices.tolist()  # the frames claimed, to the last segment


@pytest.mark.parametrize(("held", "stated", "cut_short"), [(30, 34, False), (60, 66, False), (30, 36, True),
                                                       (30, 90, True)])
def test_a_video_holding_far_fewer_frames_than_its_container_states_is_cut_short(tmp_path: Path, held: int,
                                                                                 stated: int, cut_short: bool) -> None:
    """A truncated file was sampled over the frames before the cut without a word; a container that over-states its
    length a little (AVIs and MPEG-1 files, by a frame or more) is no such file: cut short means under 90 % of the
    stated frames and at least 5 fewer. Said whether the frames sampled reached past the cut or not."""
    video = stating_frames(write_video(tmp_path / "clip.avi", held), stated)
    for choose in (lambda info: np.arange(info.num_frames), lambda info: np.arange(10)):
        _, _, info = read_sampled(video, choose)
        assert info.cut_short == (CutShort(held, stated) if cut_short else None)


def test_a_cut_short_video_is_sampled_over_the_frames_it_holds_when_the_frames_chosen_lie_before_the_cut(
        tmp_path: Path) -> None:
    """23 of 30 stated frames: two segments chose frames 7 and 22, centred on 30, both before the cut, so the video was
    sampled over a length it does not have, and said to last 1.2 s beside a note saying it holds 23 frames."""
    video = stating_frames(write_video(tmp_path / "clip.avi", 23), 30)
    spec = SamplingSpec(strategy="segments", num_segments=2, short_side=None)
    frames, indices, info = read_sampled(video, lambda info: spec.indices(info.num_frames, info.fps))
    assert indices.tolist() == spec.indices(23, 25.0).tolist() == [5, 17]
    assert [frame_level(frame) for frame in frames] == [5, 17]
    assert (info.num_frames, info.counted, info.cut_short) == (23, True, CutShort(23, 30))
    assert info.duration == pytest.approx(23 / 25)


def _matroska(path: Path, num_frames: int, *, duration_ms: float | None = None, frame_ns: int | None = None) -> Path:
    """A Matroska file of ``num_frames`` frames at 25 fps whose segment Duration (what a longer audio track gives it)
    or track DefaultDuration (a screen recorder's millisecond: 1000 fps) is rewritten. Matroska records no frame
    count: OpenCV estimates one as duration x frame rate."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for index in range(num_frames):
        writer.write(np.full((48, 64, 3), 8 * index, dtype=np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    if duration_ms is not None:
        struct.pack_into(">d", data, data.find(b"\x44\x89\x88") + 3, duration_ms)
    if frame_ns is not None:
        struct.pack_into(">I", data, data.find(b"\x23\xe3\x83\x84") + 4, frame_ns)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("case", ["mkv, audio longer", "mkv at 1000 fps", "avi at 1000 fps"])
def test_a_frame_count_the_container_does_not_record_never_says_a_video_is_cut_short(tmp_path: Path,
                                                                                    case: str) -> None:
    """An MKV or WebM records no frame count, so OpenCV's is duration x frame rate: a longer audio track or a 1000 fps
    time base made a whole video "truncated or damaged". Such a count, or any count at an implausible rate, tells
    nothing; the video is still sampled over the frames it holds."""
    video = {"mkv, audio longer": lambda: _matroska(tmp_path / "talk.mkv", 30, duration_ms=3000.0),
             "mkv at 1000 fps": lambda: _matroska(tmp_path / "screen.mkv", 30, frame_ns=1_000_000),
             "avi at 1000 fps": lambda: stating_rate(stating_frames(write_video(tmp_path / "screen.avi", 30), 60),
                                                     1000)}[case]()
    spec = SamplingSpec(strategy="segments", num_segments=3, short_side=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 1000 fps ones are warned about, as any implausible rate
        assert probe(video).num_frames >= 60  # the estimate, or the header's count
        frames, indices, info = read_sampled(video, lambda info: spec.indices(info.num_frames, info.fps))
    assert (info.cut_short, info.num_frames) == (None, 30)
    assert indices.tolist() == spec.indices(30, info.fps).tolist()
    assert [frame_level(frame) for frame in frames] == indices.tolist()


@pytest.mark.realdata
def test_the_first_third_of_a_real_clip_is_cut_short_naming_the_frames_it_holds(shared_data: Path,
                                                                               tmp_path: Path) -> None:
    clip = (shared_data / "ucf101-mini" / "UCF-101" / "BalanceBeam" / "v_BalanceBeam_g07_c01.avi").read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(clip[: len(clip) // 3])
    spec = SamplingSpec(strategy="segments", num_segments=8, short_side=32)
    _, indices, info = read_sampled(truncated, lambda info: spec.indices(info.num_frames, info.fps))
    assert info.cut_short == CutShort(22, 78) and indices[-1] < 22
    assert str(info.cut_short) == ("decoded 22 of the 78 frames its container states (a truncated or damaged file?): "
                                   "only those 22 were sampled")


def test_a_damaged_stretch_in_the_middle_of_a_file_does_not_end_the_video(tmp_path: Path) -> None:
    path = tmp_path / "damaged.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    for index in range(100):
        writer.write(np.full((48, 64, 3), 2 * index, dtype=np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    start, end = len(data) * 4 // 10, len(data) // 2
    data[start:end] = bytes(end - start)  # a tenth of the file zeroed, as a bad sector or a broken download leaves it
    path.write_bytes(bytes(data))
    counted = probe(path, count=True).num_frames
    assert counted > 80  # the frames after the damage are read too (the first failure used to end it at about 50)
    frames, indices, info = read_sampled(path, lambda info: np.arange(info.num_frames))
    assert len(frames) == info.num_frames == counted and frames[-1].mean() > 150  # the last frames are the file's last
    with pytest.raises(VideoReadError, match="damaged stretch"):  # ground truth per frame: renumbered frames would lie
        read_frames(path, range(counted), frame_exact=True)


def test_a_file_name_that_is_not_utf8_is_refused_with_a_clear_error_not_a_crash(tmp_path: Path,
                                                                               short_video: Path) -> None:
    import os

    latin1 = tmp_path / os.fsdecode(b"caf\xe9.avi")  # as an old Windows zip unpacks it
    short_video.rename(latin1)
    with pytest.raises(VideoReadError, match="not valid UTF-8"):
        read_frames(latin1, [0])


def test_a_stated_rate_of_1000_fps_is_read_as_30_fps_with_a_warning_naming_the_file(tmp_path: Path) -> None:
    """Screen recorders' files often state 1000 fps (a millisecond time base taken for a frame rate): sampled by time
    at 5 fps, a 2-second clip recorded at 25 fps gave one frame, and its duration was 0.06 s."""
    video = stating_rate(write_video(tmp_path / "screen.avi", 60), 1000)
    spec = SamplingSpec(strategy="fps", fps=5.0, short_side=None)
    with pytest.warns(UserWarning, match="states 1000 frames a second") as caught:
        _, indices, info = read_sampled(video, lambda probed: spec.indices(probed.num_frames, probed.fps))
    assert str(video) in str(caught[0].message) and "read as 30 fps" in str(caught[0].message)
    assert (info.fps, info.duration) == (30.0, 2.0)
    assert indices.tolist() == list(range(0, 60, 6))


class _CaptureStating:
    """OpenCV's capture, stating another frame rate (one an AVI header cannot carry: FFmpeg reads a rate of 0 as 25)."""

    def __init__(self, rate: float, capture: cv2.VideoCapture) -> None:
        self.rate, self.capture = rate, capture

    def get(self, prop: int) -> float:
        return self.rate if prop == cv2.CAP_PROP_FPS else self.capture.get(prop)

    def __getattr__(self, name: str) -> object:
        return getattr(self.capture, name)


@pytest.mark.parametrize(("stated", "read_as"), [(0.0, 30.0), (float("nan"), 30.0), (241.0, 30.0), (240.0, 240.0),
                                                 (0.5, 0.5)])
def test_a_rate_is_taken_as_stated_only_when_plausible(short_video: Path, monkeypatch: pytest.MonkeyPatch,
                                                       stated: float, read_as: float) -> None:
    """Up to 240 fps (phones' slow motion), and any slow rate (time lapses), as stated; 0, NaN and faster as 30."""
    capture = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda *args: _CaptureStating(stated, capture(*args)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert probe(short_video).fps == read_as
    assert [str(short_video) in str(warning.message) for warning in caught] == [True] * (read_as != stated)


def test_a_search_reports_the_folders_it_cannot_list_or_follow_and_still_ends_cycles_quietly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.walk without onerror swallowed a folder it could not list, and a link to a folder that leads nowhere or
    in a loop landed among the files, where a search for videos dropped it: the folder's videos vanished unsaid."""
    root = tmp_path / "root"
    (root / "denied").mkdir(parents=True)
    (root / "cycle").symlink_to(".")  # back to a folder already walked: ended on purpose, not an error
    (root / "gamma").symlink_to(tmp_path / "unmounted" / "gamma")
    (root / "delta").symlink_to("delta")
    (root / "clip.avi").symlink_to(tmp_path / "nowhere.avi")  # a file to its reader, which says it is broken
    deny_listing(monkeypatch, root / "denied")
    problems: list[VideoReadError] = []

    walked = {folder.name: names for folder, names in walk_visible(root, unreadable=problems.append)}

    assert walked == {"root": ["clip.avi"]}
    reasons = {Path(problem.path).name: problem.reason for problem in problems}
    assert sorted(reasons) == ["delta", "denied", "gamma"]
    assert reasons["gamma"].startswith(f"is a symbolic link to {tmp_path / 'unmounted' / 'gamma'}, which does not "
                                       "exist")
    assert "symbolic link in a loop" in reasons["delta"] and "permission denied" in reasons["denied"]
    with pytest.raises(VideoReadError, match="delta: is a symbolic link in a loop"):
        list(walk_visible(root))


def test_a_search_passes_over_what_cannot_hold_videos_as_it_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusing what cannot be searched refused legitimate datasets: ``lost+found`` at a disk's root (mode 700, owned
    by root: a user can neither read nor remove it) and a broken link to a file a dataset holds beside its videos
    (``notes.txt``, ``cover.jpg``), which could hold no video. Both are passed over, as before; any other broken link
    (a folder, perhaps: ``session``, ``part.2``) is still said."""
    root = tmp_path / "root"
    (root / "lost+found").mkdir(parents=True)
    (root / "cat").mkdir()
    (root / "cat" / "notes.txt").symlink_to(tmp_path / "gone" / "notes.txt")
    (root / "cat" / "cover.jpg").symlink_to(tmp_path / "gone" / "cover.jpg")
    (root / "cat" / "session").symlink_to(tmp_path / "gone" / "session")
    (root / "cat" / "part.2").symlink_to(tmp_path / "gone" / "walking_part2")  # a folder's name with a dot
    deny_listing(monkeypatch, root / "lost+found")
    problems: list[VideoReadError] = []

    walked = {folder.name: names for folder, names in walk_visible(root, unreadable=problems.append)}

    assert walked == {"root": [], "cat": ["cover.jpg", "notes.txt"]}
    assert [Path(problem.path).name for problem in problems] == ["part.2", "session"]
