from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import deny_listing, real_data, stating_rate, write_video
from vidrnn.data.demo_staging import DEMO_MARKER
from vidrnn.data.evidence_cache import EvidenceCache, Refused
from vidrnn.data.synthetic_tracking import _tracking_marker
from vidrnn.data.tracking_datamodule import TrackingDataModule
from vidrnn.data.tracking_sequences import (
    TrackingSequence, find_sequences, load_sequence, load_sequences, sequence_entries,
)
from vidrnn.tracker.simulation import EvidenceRuns
from vidrnn.video import VideoReadError



def write_images(folder: Path, count: int, pattern: str = "{:04d}.jpg", first: int = 1) -> Path:
    """Write ``count`` 32x32 frames numbered from ``first``, frame ``i`` a flat grey of level ``8 * i`` modulo 256 (OTB
    naming)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        cv2.imwrite(str(folder / pattern.format(index + first)), np.full((32, 32, 3), 8 * index % 256, dtype=np.uint8))
    return folder


def write_otb(folder: Path, frames: int, lines: list[str]) -> Path:
    write_images(folder / "img", frames)
    (folder / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return folder


# --- the real benchmark sequences in ../shared/data/tracking -------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> dict[str, TrackingSequence]:
    return {sequence.name: sequence for sequence in find_sequences(real_data("tracking"))}


@pytest.mark.realdata
def test_every_real_sequence_loads_with_one_box_per_frame(real: dict[str, TrackingSequence]) -> None:
    lengths = {name: (sequence.format, sequence.num_frames) for name, sequence in real.items()}
    assert lengths == {
        "Couple": ("otb", 140),
        "Crossing": ("otb", 120),
        "Football1": ("otb", 74),
        "bag": ("vot", 196),
        "01_david": ("tld", 761),
        "02_jumping": ("tld", 313),
        "03_pedestrian1": ("tld", 140),
    }
    for sequence in real.values():
        assert sequence.boxes.shape == (sequence.num_frames, 4)
        assert sequence.visible.all() and (sequence.boxes[:, 2:] > 0).all()


@pytest.mark.realdata
def test_find_sequences_sorts_by_name_ignoring_case(real: dict[str, TrackingSequence]) -> None:
    assert list(real) == ["01_david", "02_jumping", "03_pedestrian1", "bag", "Couple", "Crossing", "Football1"]


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("name", "ground_truth", "first_line", "expected"),
    [
        ("Couple", "otb/Couple/groundtruth_rect.txt", "51\t47\t25\t62", [50, 46, 25, 62]),  # 1-based x,y,w,h
        ("Crossing", "otb/Crossing/groundtruth_rect.txt", "205\t151\t17\t50", [204, 150, 17, 50]),
        ("Football1", "otb/Football1/groundtruth_rect.txt", "153,105,26,43", [152, 104, 26, 43]),
        ("01_david", "tld/01_david/gt.txt", "165,93,216,147", [164, 92, 52, 55]),  # 1-based inclusive corners
        (
            "bag",
            "vot/bag/groundtruth.txt",
            "334.02,128.36,438.19,188.78,396.39,260.83,292.23,200.41",  # 0-based polygon
            [292.23, 128.36, 438.19 - 292.23, 260.83 - 128.36],  # min x, min y, x range, y range
        ),
    ],
)
def test_first_real_box_matches_the_file_by_hand(
    real: dict[str, TrackingSequence], name: str, ground_truth: str, first_line: str, expected: list[float]
) -> None:
    assert (real_data("tracking") / ground_truth).read_text().splitlines()[0] == first_line
    assert real[name].boxes[0] == pytest.approx(expected, abs=1e-9)


@pytest.mark.realdata
def test_tld_jumping_agrees_with_otbs_copy_of_the_same_clip(real: dict[str, TrackingSequence]) -> None:
    """OTB's Jumping is TLD's jumping; OTB annotates its first frame as 147,110,34,33 (1-based x,y,w,h)."""
    assert real["02_jumping"].boxes[0].tolist() == [147 - 1, 110 - 1, 34, 33]


@pytest.mark.realdata
def test_tld_frames_are_the_video_counted_by_decoding(real: dict[str, TrackingSequence]) -> None:
    david = real["01_david"]
    assert david.frames.name == "david.mpg"
    assert david.num_frames == 761  # the container claims 760
    assert (david.unannotated_frames, david.unmatched_boxes) == (0, 0)


@pytest.mark.realdata
def test_football1_drops_its_seven_unannotated_frames_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.tracking"):
        football = load_sequence(real_data("tracking") / "otb" / "Football1")
    assert (football.num_frames, football.unannotated_frames) == (74, 7)
    assert "Football1" in caplog.text and "81 frames, 74 boxes" in caplog.text


# --- synthetic sequences ---------------------------------------------------------------------------------------------


def test_otb_folder_written_by_any_tool_loads_zero_based(tmp_path: Path) -> None:
    folder = write_otb(tmp_path / "Toy", 3, ["1,1,10,12", "2, 3, 10, 12", "3 5\t10 12"])
    sequence = load_sequence(folder)
    assert sequence.format == "otb" and sequence.frames == folder / "img"
    assert sequence.boxes.tolist() == [[0, 0, 10, 12], [1, 2, 10, 12], [2, 4, 10, 12]]


def test_otb_folders_with_one_file_per_target_hold_one_sequence_each(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "Jogging" / "img", 4).parent
    (folder / "groundtruth_rect.1.txt").write_text("1,1,4,4\n" * 4)
    (folder / "groundtruth_rect.2.txt").write_text("9,9,5,5\n" * 3)
    first, second = load_sequences(folder)
    assert (first.name, first.num_frames, second.name, second.num_frames) == ("Jogging-1", 4, "Jogging-2", 3)
    assert second.boxes[0].tolist() == [8, 8, 5, 5] and first.frames == second.frames == folder / "img"
    assert [sequence.name for sequence in find_sequences(tmp_path)] == ["Jogging-1", "Jogging-2"]
    with pytest.raises(ValueError, match="several targets"):
        load_sequence(folder)


@pytest.mark.parametrize("name", ["David", "david"])
def test_otb_david_starts_at_its_300th_image_when_the_earlier_ones_are_there(tmp_path: Path, name: str) -> None:
    """Whatever the folder's case (a copy renamed ``david``): read from image 1, every box would sit 299 frames
    early."""
    folder = tmp_path / name
    write_images(folder / "img", 8, first=296)  # images 0296..0303; the annotation covers 0300..0303
    (folder / "groundtruth_rect.txt").write_text("1,1,4,4\n" * 4)
    sequence = load_sequence(folder)
    assert (sequence.first_frame, sequence.num_frames) == (4, 4)
    levels = [round(float(frame.mean()) / 8) for frame in sequence.read()]
    assert levels == [4, 5, 6, 7]  # the frames of images 0300..0303
    assert [index for index, _ in sequence.iter_frames(chunk_size=2)][0].tolist() == [4, 5]


@pytest.mark.parametrize(("images", "boxes"), [(20, 20), (310, 310), (8, 6)])
def test_a_folder_named_david_whose_counts_are_not_otbs_david_reads_from_its_first_image(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, images: int, boxes: int) -> None:
    """Only OTB's David holds more images than boxes by the images before its annotation (0001..0299): any other
    folder of that name is read from its first image, each box with its own frame, and no warning says otherwise.
    Taken for David, 20 images and 20 boxes were refused with a negative frame count, and 310 of each were paired
    299 frames apart with a warning that 299 boxes had no frame."""
    folder = write_otb(tmp_path / "david", images, [f"{index % 20 + 1},1,4,4" for index in range(boxes)])
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.tracking_sequences"):
        sequence = load_sequence(folder)
    assert (sequence.first_frame, sequence.num_frames) == (0, min(images, boxes))
    assert sequence.boxes[:, 0].tolist() == [index % 20 for index in range(min(images, boxes))]
    if images == boxes:
        assert not caplog.records
    else:
        assert f"{images} frames, {boxes} boxes: last {images - boxes} frames dropped" in caplog.text


def test_crlf_and_trailing_blank_lines_are_accepted(tmp_path: Path) -> None:
    folder = write_otb(tmp_path / "Toy", 2, [])
    (folder / "groundtruth_rect.txt").write_bytes(b"1,1,4,4\r\n2,2,4,4\r\n\r\n\n")
    assert load_sequence(folder).boxes[:, 0].tolist() == [0, 1]


def test_vot_reads_images_in_the_folder_itself_and_both_line_shapes(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "toy", 2, "{:08d}.jpg")
    (folder / "groundtruth.txt").write_text("10,2,14,6,10,10,6,6\n1.5,2.5,3,4\n")
    sequence = load_sequence(folder)
    assert (sequence.format, sequence.frames) == ("vot", folder)
    assert sequence.boxes.tolist() == [[6, 2, 8, 8], [1.5, 2.5, 3, 4]]


def test_nan_lines_mark_absent_frames(tmp_path: Path) -> None:
    folder = tmp_path / "01_toy"
    write_video(folder / "toy.avi", 4, size=(32, 32))
    (folder / "gt.txt").write_text("1,1,10,10\nNaN,NaN,NaN,NaN\nnan,nan,nan,nan\n3,4,12,14\n")
    sequence = load_sequence(folder)
    assert (sequence.format, sequence.frames.name) == ("tld", "toy.avi")
    assert sequence.visible.tolist() == [True, False, False, True]
    assert np.isnan(sequence.boxes[1:3]).all()
    assert sequence.boxes[3].tolist() == [2, 3, 10, 11]


def test_a_partly_nan_line_blanks_the_whole_box(tmp_path: Path) -> None:
    folder = write_otb(tmp_path / "Toy", 2, ["1,2,NaN,4", "1,2,3,4"])
    sequence = load_sequence(folder)
    assert sequence.visible.tolist() == [False, True]
    assert np.isnan(sequence.boxes[0]).all()


def test_a_box_without_area_marks_an_absent_frame(tmp_path: Path) -> None:
    """LaSOT- and GOT-10k-style files write 0,0,0,0 where the target is absent: read as a visible box it would give
    training a search of size 0 (log 0) and evaluation a miss."""
    folder = write_otb(tmp_path / "Toy", 4, ["1,2,3,4", "0,0,0,0", "5,5,0,7", "1,2,3,4"])
    sequence = load_sequence(folder)
    assert sequence.visible.tolist() == [True, False, False, True]
    assert np.isnan(sequence.boxes[1:3]).all()


def test_a_tld_rows_occlusion_marks_are_absent_and_a_one_pixel_box_is_visible(tmp_path: Path) -> None:
    """TLD-layout files write 0,0,0,0, -1,-1,-1,-1 or NaN where the target is hidden: the inclusive corners' +1 made
    the first two visible 1x1 boxes. Corners with x2 == x1 are a box one pixel wide, as TLD's convention reads them."""
    folder = tmp_path / "01_toy"
    write_video(folder / "toy.avi", 6, size=(32, 32))
    (folder / "gt.txt").write_text("1,1,10,10\n0,0,0,0\n-1,-1,-1,-1\nNaN,NaN,NaN,NaN\n4,4,4,9\n3,4,12,14\n")
    sequence = load_sequence(folder)
    assert sequence.visible.tolist() == [True, False, False, False, True, True]
    assert np.isnan(sequence.boxes[1:4]).all()
    assert sequence.boxes[4].tolist() == [3, 3, 1, 6]


def test_a_tld_file_mostly_of_reversed_corners_is_refused_asking_whether_it_is_xywh(tmp_path: Path) -> None:
    """A gt.txt holding x,y,w,h has rows whose x2 (the width) lies left of x1: read as rows without area they made
    every frame absent, and the message was only "no box in the first frame"."""
    folder = tmp_path / "01_toy"
    write_video(folder / "toy.avi", 4, size=(32, 32))
    (folder / "gt.txt").write_text("0,0,0,0\n20,2,8,9\n3,4,12,14\n15,6,8,9\n")
    with pytest.raises(ValueError, match=r"gt.txt: corners reversed in 2 of the 3 boxes \(lines 2, 4\); line 2: x2 "
                                         r"\(8\) is less than x1 \(20\).*is this file x,y,w,h\? Then convert it"):
        load_sequence(folder)
    # x,y,w,h of a large target near the corner: a minority of its rows reversed, the rest wrong boxes; refused too
    (folder / "gt.txt").write_text("".join(f"{10 + 6 * n},2,20,20\n" for n in range(4)) + "3,4,12,14\n" * 36)
    with pytest.raises(ValueError, match=r"corners reversed in 2 of the 40 boxes \(lines 3, 4\).*is this file x,y,w,h"):
        load_sequence(folder)


def test_an_isolated_reversed_tld_row_is_an_absent_frame_warned_about_naming_the_file_and_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One swapped annotation row made a real sequence unloadable, with advice to convert the whole (correct) file."""
    folder = tmp_path / "01_toy"
    write_video(folder / "toy.avi", 4, size=(32, 32))
    (folder / "gt.txt").write_text("3,4,12,14\n3,4,12,14\n20,4,12,14\n3,4,12,14\n")
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.tracking_sequences"):
        sequence = load_sequence(folder)
    assert sequence.visible.tolist() == [True, True, False, True]
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and f"{folder / 'gt.txt'}: corners reversed on line 3 (x2 (12) is less than x1 (20))" \
        in warnings[0], warnings
    assert "x,y,w,h" not in warnings[0]


def test_tld_corners_reversed_by_less_than_the_inclusive_pixel_keep_their_inclusive_reading(tmp_path: Path) -> None:
    """Real ground truth (wakeboard5 of ../shared/data/tracking-train) holds sub-pixel targets written with x2 half
    a pixel left of x1: under the inclusive +1 a box half a pixel wide, not a file of another layout."""
    folder = tmp_path / "01_toy"
    write_video(folder / "toy.avi", 3, size=(32, 32))
    (folder / "gt.txt").write_text("3,4,12,14\n13.5,4,13,6\n13,4,12,6\n")
    sequence = load_sequence(folder)
    assert sequence.visible.tolist() == [True, True, False]  # reversed by the whole pixel: no area left
    assert sequence.boxes[1].tolist() == [12.5, 3, 0.5, 3]


def test_wakeboard5_reads_as_before_its_one_pixel_boxes_visible() -> None:
    """Its rows 525, 527 and 530 (``342.50,181.00,342.50,184.50``) are 1 px wide boxes, visible to the code before
    zero-width corners were taken for absent: 559 visible boxes of 559."""
    sequence = load_sequence(real_data("tracking-train", "wakeboard5"))
    assert int(sequence.visible.sum()) == 559 == sequence.num_frames
    assert sequence.boxes[524].tolist() == [341.5, 180, 1, 4.5]


def test_boxes_mostly_outside_the_frame_are_warned_about_naming_the_likely_causes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Corners read as x,y,w,h, or boxes annotated at another resolution than the frames, loaded without a word."""
    folder = write_otb(tmp_path / "Big", 5, ["2,2,8,8", "2,2,8,8", "25,3,20,8", "26,26,30,30", "40,40,9,9"])
    write_otb(tmp_path / "Leaving", 5, ["2,2,8,8", "2,2,8,8", "2,2,8,8", "2,2,8,8", "27,2,8,8"])
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.tracking_sequences"):
        load_sequence(folder)
        load_sequence(tmp_path / "Leaving")
    assert "Big: 3 of 5 boxes (60 %) lie mostly outside the 32x32 frames" in caplog.text
    assert "x1,y1,x2,y2 read as x,y,w,h" in caplog.text and "another resolution" in caplog.text
    assert "Leaving" not in caplog.text


def test_corners_read_as_xywh_reaching_past_the_frame_in_a_quarter_of_the_boxes_are_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An OTB file holding corners: each box's width is x2, so it reaches past the edge wherever x1 + x2 exceeds the
    frame's width, while mostly inside it."""
    write_otb(tmp_path / "Corners", 4, ["2,2,8,8", "2,2,8,8", "16,3,20,8", "18,3,22,8"])
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.tracking_sequences"):
        load_sequence(tmp_path / "Corners")
    assert "Corners: 2 of 4 boxes (50 %) lie partly outside the 32x32 frames" in caplog.text


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [("1,2,3", "expected 4 values"), ("1,2,three,4", "'three' is not a number"), ("1,2,inf,4", "not a finite")],
)
def test_malformed_ground_truth_names_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    folder = write_otb(tmp_path / "Toy", 3, ["1,1,4,4", "2,2,4,4", bad_line])
    with pytest.raises(ValueError, match=message) as error:
        load_sequence(folder)
    assert f"{folder / 'groundtruth_rect.txt'}:3" in str(error.value)


def test_a_header_line_is_malformed_and_the_message_says_to_delete_it(tmp_path: Path) -> None:
    """A header of column names said only "'x' is not a number", and one number alone (a frame count, as some tools
    write) only "expected 4 values"; the same text further down is no header."""
    folder = write_otb(tmp_path / "Toy", 3, ["x,y,w,h", "1,1,4,4", "2,2,4,4"])
    with pytest.raises(ValueError, match=r"groundtruth_rect.txt:1: 'x' is not a number; a header line\? Delete it"):
        load_sequence(folder)
    folder = write_otb(tmp_path / "Count", 3, ["40", "1,1,4,4", "2,2,4,4"])
    with pytest.raises(ValueError, match=r"groundtruth_rect.txt:1: expected 4 values \(x,y,w,h\), found 1: '40'; a "
                                         r"header line\? Delete it: .*groundtruth_rect.txt holds one box per line"):
        load_sequence(folder)
    for name, line in (("Later", "x,y,w,h"), ("LaterCount", "40")):
        folder = write_otb(tmp_path / name, 3, ["1,1,4,4", line, "2,2,4,4"])
        with pytest.raises(ValueError, match=r"groundtruth_rect.txt:2: [^;]*$"):
            load_sequence(folder)


def test_a_trailing_separator_is_accepted(tmp_path: Path) -> None:
    """``298,160,48,80,`` holds four numbers: it said "expected 4 values, found 5"."""
    folder = write_otb(tmp_path / "Toy", 2, ["1,1,4,4,", "2,2,4,4\t"])
    assert load_sequence(folder).boxes.tolist() == [[0, 0, 4, 4], [1, 1, 4, 4]]


@pytest.mark.parametrize("line", ["10,20,30,40,,,,", "10,20,30,40,,", "10,,20,30,40"])
def test_empty_fields_beyond_one_trailing_separator_are_malformed(tmp_path: Path, line: str) -> None:
    """A cut-off VOT polygon (blank CSV cells) was read as the box x,y,w,h 10,20,30,40."""
    folder = write_images(tmp_path / "toy", 2)
    (folder / "groundtruth.txt").write_text(f"1,2,3,4\n{line}\n")
    with pytest.raises(ValueError, match=r"groundtruth.txt:2: expected 8 or 4 values .*, found \d+: "):
        load_sequence(folder)


def test_a_blank_line_inside_the_ground_truth_is_malformed(tmp_path: Path) -> None:
    folder = write_otb(tmp_path / "Toy", 3, ["1,1,4,4", "", "2,2,4,4"])
    with pytest.raises(ValueError, match=r"groundtruth_rect.txt:2: expected 4 values .* found 0"):
        load_sequence(folder)


def test_vot_line_of_six_values_is_malformed(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "toy", 1)
    (folder / "groundtruth.txt").write_text("1,2,3,4,5,6\n")
    with pytest.raises(ValueError, match="groundtruth.txt:1: expected 8 or 4 values"):
        load_sequence(folder)


def test_vot_mask_lines_become_the_tight_box_of_the_mask(tmp_path: Path) -> None:
    """VOT2020+ writes masks as ``m<x>,<y>,<w>,<h>,<run lengths>``: the runs alternate 0s and 1s, starting with 0s,
    over the w x h region in row-major order (vot-toolkit's create_mask_from_string / rle_to_mask)."""
    folder = write_images(tmp_path / "toy", 4, "{:08d}.jpg")
    (folder / "groundtruth.txt").write_text(
        "m10,5,30,40,0,1200\n"  # the whole 30x40 region
        "m10,5,4,3,5,2,3,1\n"  # region rows 0000 / 0110 / 0010 (the last 0 left out): columns 1-2, rows 1-2
        "m10,5,4,3,12\n"  # no 1s: the target is absent
        "1,2,3,4\n"
    )
    sequence = load_sequence(folder)
    assert sequence.format == "vot"
    assert sequence.boxes[[0, 1, 3]].tolist() == [[10, 5, 30, 40], [11, 6, 2, 2], [1, 2, 3, 4]]
    assert sequence.visible.tolist() == [True, True, False, True]


@pytest.mark.parametrize(("line", "message"), [("m10,5,4,3,5,20", "run lengths add up to 25, more than the 4x3"),
                                               ("m10,5,4", "a mask needs"), ("m10,5,4,x,1", "'x' is not a whole")])
def test_malformed_vot_masks_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    folder = write_images(tmp_path / "toy", 1, "{:08d}.jpg")
    (folder / "groundtruth.txt").write_text(line + "\n")
    with pytest.raises(ValueError, match=message) as error:
        load_sequence(folder)
    assert f"{folder / 'groundtruth.txt'}:1" in str(error.value)


def write_got10k(folder: Path, boxes: list[str], **labels: list[int]) -> Path:
    """A GOT-10k sequence: frames ``00000001.jpg ...`` in the folder itself, ``groundtruth.txt`` (1-based x,y,w,h),
    ``meta_info.ini`` and the label files named in ``labels`` (``absence``, ``cover``)."""
    write_images(folder, len(boxes), "{:08d}.jpg")
    (folder / "groundtruth.txt").write_text("\n".join(boxes) + "\n")
    (folder / "meta_info.ini").write_text("[METAINFO]\nresolution: (32, 32)\n")
    for name, values in labels.items():
        (folder / f"{name}.label").write_text("".join(f"{value}\n" for value in values))
    return folder


def test_got10k_boxes_are_one_based_and_its_labels_mark_absent_frames(tmp_path: Path) -> None:
    """GOT-10k's files still hold a box where the target is absent; cover.label (0: fully hidden, what the official
    toolkit leaves out of the score) or, without it, absence.label says so."""
    boxes = ["1.0000,2.0000,10.0000,12.0000"] * 4
    both = load_sequence(write_got10k(tmp_path / "GOT-10k_Val_000001", boxes, absence=[0, 1, 0, 0],
                                      cover=[8, 0, 0, 3]))
    assert (both.format, both.frames) == ("got10k", tmp_path / "GOT-10k_Val_000001")
    assert both.visible.tolist() == [True, False, False, True]
    assert both.boxes[0].tolist() == [0, 1, 10, 12]
    absence = load_sequence(write_got10k(tmp_path / "GOT-10k_Train_000002", boxes, absence=[0, 1, 1, 0]))
    assert absence.visible.tolist() == [True, False, False, True]


def test_got10k_labels_of_another_length_than_the_ground_truth_are_refused(tmp_path: Path) -> None:
    folder = write_got10k(tmp_path / "GOT-10k_Val_000001", ["1,2,10,12"] * 3, cover=[8, 8])
    with pytest.raises(ValueError, match=r"cover.label: 2 lines for the 3 boxes of .*groundtruth.txt"):
        load_sequence(folder)


def test_lasot_sequences_read_their_img_folder_and_one_based_boxes(tmp_path: Path) -> None:
    """LaSOT: category/category-N/img/ + groundtruth.txt (x,y,w,h, 1-based: OTB's toolkit), 0,0,0,0 where the
    target is absent; the occlusion files are left to the boxes."""
    folder = tmp_path / "airplane" / "airplane-1"
    write_images(folder / "img", 3, "{:08d}.jpg")
    (folder / "groundtruth.txt").write_text("1,2,10,12\n0,0,0,0\n3,4,10,12\n")
    (folder / "full_occlusion.txt").write_text("0,1,0\n")
    (folder / "out_of_view.txt").write_text("0,0,0\n")
    (folder / "nlp.txt").write_text("white airplane landing\n")
    sequence, = find_sequences(tmp_path)
    assert (sequence.name, sequence.format, sequence.frames) == ("airplane-1", "lasot", folder / "img")
    assert sequence.boxes[[0, 2]].tolist() == [[0, 1, 10, 12], [2, 3, 10, 12]]
    assert sequence.visible.tolist() == [True, False, True]


def test_trackingnet_and_uav123_layouts_are_named_with_how_to_arrange_them(tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Ground truth kept apart from the frames (anno/<seq>.txt) is no sequence folder: instead of an empty result
    without a word, the frames left unread are counted and the layout is explained."""
    write_images(tmp_path / "TRAIN_0" / "frames" / "seqA", 3, "{}.jpg", first=0)
    (tmp_path / "TRAIN_0" / "anno").mkdir()
    (tmp_path / "TRAIN_0" / "anno" / "seqA.txt").write_text("1,2,10,12\n" * 3)
    write_otb(tmp_path / "as_otb" / "bike1", 2, ["1,1,4,4"] * 2)
    write_video(tmp_path / "videos" / "clip.avi", 2, size=(32, 32))
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.tracking_sequences"):
        assert [sequence.name for sequence in find_sequences(tmp_path)] == ["bike1"]
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1
    assert "2 image folders or video files" in warnings[0] and "TRAIN_0/frames/seqA" in warnings[0]
    assert "videos/clip.avi" in warnings[0] and "anno" in warnings[0] and "apart from the frames" in warnings[0]


def test_a_long_list_of_unread_folders_says_how_many_it_leaves_out(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Three examples of five used to end in ", ...", which reads like a list that goes on a little."""
    for index in range(5):
        write_video(tmp_path / "videos" / f"clip{index}.avi", 2, size=(32, 32))
    write_otb(tmp_path / "as_otb" / "bike1", 2, ["1,1,4,4"] * 2)
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.tracking_sequences"):
        find_sequences(tmp_path)
    warning, = [record.getMessage() for record in caplog.records]
    assert "5 image folders or video files" in warning and "and 2 more" in warning


def test_folder_that_is_no_sequence_is_named_in_the_error(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "holiday", 2)
    with pytest.raises(ValueError, match="holiday: not a tracking sequence"):
        load_sequence(folder)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_sequence(tmp_path / "missing")


def test_sequence_names_a_table_of_scores_could_not_tell_apart_are_refused(tmp_path: Path) -> None:
    """tracking_scores.csv names a sequence by its path under the test folder: a sequence folder MEAN there was named
    as the mean rows, and an OTB folder X's targets X-1, X-2 as a folder X-1 beside it."""
    write_otb(tmp_path / "mean" / "MEAN", 3, ["1,1,4,4"] * 3)
    with pytest.raises(ValueError, match=r"MEAN.* the name of the mean rows of tracking_scores.csv"):
        find_sequences(tmp_path / "mean")
    assert [sequence.name_under(tmp_path) for sequence in find_sequences(tmp_path)] == ["mean/MEAN"]  # apart

    folder = write_images(tmp_path / "otb" / "Jogging" / "img", 3).parent
    for target in (1, 2):
        (folder / f"groundtruth_rect.{target}.txt").write_text("1,1,4,4\n" * 3)
    write_otb(tmp_path / "otb" / "Jogging-1", 3, ["1,1,4,4"] * 3)
    with pytest.raises(ValueError, match=r"Jogging-1: two sequences of this name under .*otb: one of the targets of "
                                         r".*otb/Jogging \(.*\) and .*otb/Jogging-1; rename the folder .*otb/Jogging-1"):
        find_sequences(tmp_path / "otb")
    with pytest.raises(ValueError, match=r"otb/Jogging-1: two sequences"):
        find_sequences(tmp_path)


def test_empty_ground_truth_is_an_error(tmp_path: Path) -> None:
    folder = write_otb(tmp_path / "Toy", 2, [])
    with pytest.raises(ValueError, match="holds no boxes"):
        load_sequence(folder)


def test_extra_frames_are_dropped_and_not_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = write_otb(tmp_path / "Toy", 5, ["1,1,4,4", "2,2,4,4", "3,3,4,4"])
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.tracking"):
        sequence = load_sequence(folder)
    assert (sequence.num_frames, sequence.unannotated_frames, sequence.unmatched_boxes) == (3, 2, 0)
    assert "last 2 frames dropped" in caplog.text
    assert "assumed to start at the first frame" in caplog.text  # the cue for ground truth that starts later
    frames = sequence.read(size=(16, 16))
    assert frames.shape == (3, 16, 16, 3)
    assert [round(float(frame.mean()) / 8) for frame in frames] == [0, 1, 2]
    assert [indices.tolist() for indices, _ in sequence.iter_frames(chunk_size=2)] == [[0, 1], [2]]


def test_extra_boxes_are_dropped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = write_otb(tmp_path / "Toy", 2, ["1,1,4,4", "2,2,4,4", "3,3,4,4", "4,4,4,4"])
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.tracking"):
        sequence = load_sequence(folder)
    assert (sequence.num_frames, sequence.unannotated_frames, sequence.unmatched_boxes) == (2, 0, 2)
    assert sequence.boxes[:, 0].tolist() == [0, 1]
    assert "last 2 boxes dropped" in caplog.text


def test_otb_folder_without_img_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "Toy"
    folder.mkdir()
    (folder / "groundtruth_rect.txt").write_text("1,1,4,4\n")
    with pytest.raises(ValueError, match="Toy: OTB sequence without an img/ folder"):
        load_sequence(folder)


def test_find_sequences_walks_nested_mixed_formats(tmp_path: Path) -> None:
    write_otb(tmp_path / "otb" / "Zebra", 1, ["1,1,4,4"])
    vot = write_images(tmp_path / "vot" / "deep" / "apple" / "color", 1)
    (vot.parent / "groundtruth.txt").write_text("0,0,4,4\n")
    write_images(tmp_path / "not_a_sequence", 1)
    sequences = find_sequences(tmp_path)
    assert [(sequence.name, sequence.format) for sequence in sequences] == [("apple", "vot"), ("Zebra", "otb")]
    assert find_sequences(tmp_path / "not_a_sequence") == []


def test_boxes_are_read_only(tmp_path: Path) -> None:
    sequence = load_sequence(write_otb(tmp_path / "Toy", 1, ["1,1,4,4"]))
    with pytest.raises(ValueError):
        sequence.boxes[0, 0] = 99


def _runs(name: str, value: float) -> EvidenceRuns:
    return EvidenceRuns(name, np.full((1, 2, 3), value), np.zeros((1, 2, 4)), np.ones((1, 2), dtype=bool),
                        np.zeros((1, 2, 3)), np.array([32, 32]))


def test_sequences_of_one_name_in_two_folders_keep_their_own_cached_evidence(tmp_path: Path) -> None:
    first = load_sequence(write_otb(tmp_path / "otb" / "Basketball", 3, ["1,1,4,4"] * 3))
    second = load_sequence(write_otb(tmp_path / "more" / "Basketball", 3, ["1,1,4,4"] * 3))
    assert first.name == second.name and first.boxes.tolist() == second.boxes.tolist()
    cache = EvidenceCache(tmp_path / "cache", "tracking", {"walks": 1})
    cache.save(first, _runs("Basketball", 1.0))
    cache.save(second, _runs("Basketball", 2.0))
    assert cache.path(first) != cache.path(second) and len(list(cache.folder.iterdir())) == 2
    assert cache.load(first).evidence.max() == 1.0 and cache.load(second).evidence.max() == 2.0


def test_a_sequence_with_a_long_but_legal_folder_name_keeps_its_cached_evidence(tmp_path: Path) -> None:
    """The evidence file was the sequence's name + a digest + ".npz": a folder name that fits the file system made a
    file name that did not, and the fit stopped."""
    name = "序列" * 40 + "-walk"  # 245 bytes in UTF-8
    sequence = load_sequence(write_otb(tmp_path / name, 3, ["1,1,4,4"] * 3))
    cache = EvidenceCache(tmp_path / "cache", "tracking", {"walks": 1})
    cache.save(sequence, _runs(name, 1.0))
    assert len(cache.path(sequence).name.encode()) <= 255 and cache.load(sequence).evidence.max() == 1.0


def test_a_frame_overwritten_in_place_makes_the_cached_evidence_stale(tmp_path: Path) -> None:
    """Writing over a frame file changes neither the folder's entries nor its modification time; the evidence
    computed from the old frame must not be read back for the new one."""
    folder = write_otb(tmp_path / "Toy", 3, ["1,1,4,4"] * 3)
    sequence = load_sequence(folder)
    cache = EvidenceCache(tmp_path / "cache", "tracking", {"walks": 1})
    cache.save(sequence, _runs("Toy", 1.0))
    assert cache.load(sequence) is not None
    images = (folder / "img").stat()
    cv2.imwrite(str(folder / "img" / "0002.jpg"), np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8))
    os.utime(folder / "img", ns=(images.st_atime_ns, images.st_mtime_ns))
    assert cache.load(sequence) is None


def test_frames_given_new_times_with_the_same_bytes_keep_their_cached_evidence(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset copied without its times or re-mounted: simulating its runs again would cost hours of CNN time for
    the same frames. The runs are kept, the new times noted (the next load hashes nothing); other bytes still count
    as other frames."""
    folder = write_otb(tmp_path / "Toy", 3, ["1,1,4,4"] * 3)
    sequence = load_sequence(folder)
    cache = EvidenceCache(tmp_path / "cache", "tracking", {"walks": 1})
    cache.save(sequence, _runs("Toy", 1.0))
    later = time.time_ns() + 10**12
    for frame in (folder / "img").iterdir():
        os.utime(frame, ns=(later, later))
    assert cache.load(sequence).evidence.max() == 1.0

    monkeypatch.setattr("vidrnn.data.evidence_cache.file_sha256", _never_hashed)
    assert cache.load(sequence).evidence.max() == 1.0
    monkeypatch.undo()

    cv2.imwrite(str(folder / "img" / "0002.jpg"), np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8))
    os.utime(folder / "img" / "0002.jpg", ns=(later + 1, later + 1))
    assert cache.load(sequence) is None


def test_a_cache_that_cannot_record_new_times_is_warned_about_by_rank_zero_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process of a DDP fit loads the cached runs: each said again that the times cannot be recorded."""
    from lightning.pytorch.utilities import rank_zero_only

    sequence = load_sequence(write_otb(tmp_path / "Toy", 3, ["1,1,4,4"] * 3))
    cache = EvidenceCache(tmp_path / "cache", "tracking", {"walks": 1})
    cache.save(sequence, _runs("Toy", 1.0))
    later = time.time_ns() + 10**12
    for frame in (tmp_path / "Toy" / "img").iterdir():
        os.utime(frame, ns=(later, later))
    monkeypatch.setattr(EvidenceCache, "_write", _read_only)
    for rank, said in ((1, False), (0, True)):
        monkeypatch.setattr(rank_zero_only, "rank", rank)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="vidrnn.data.evidence_cache"):
            assert cache.load(sequence).evidence.max() == 1.0
        assert ("the times cannot be recorded" in caplog.text) == said


def _read_only(*args: object) -> None:
    raise PermissionError("read-only file system")


def _never_hashed(path: Path) -> str:
    raise AssertionError(f"{path} hashed again")


# --- names and records older caches were written under: literals computed by the code that wrote them -------------


@pytest.mark.parametrize(("prefix", "settings", "folder"), [
    ("tracking-resnet18", {"walks": 3, "seed": 7, "precision": "fp32", "tracker": {"scale_rate": 0.3, "name": "café"}},
     "tracking-resnet18-12f57a9761efe9d4"),
    ("tracking", {"walks": 1}, "tracking-3e9206f8041c68d7"),
])
def test_evidence_keeps_the_folder_name_older_versions_gave_its_settings(prefix: str, settings: dict, folder: str,
                                                                         tmp_path: Path) -> None:
    """Cached runs on users' disks are found by this name: hashing the settings in any other way would simulate
    every sequence again (the CNN over every frame of every run)."""
    assert EvidenceCache(tmp_path, prefix, settings).folder == tmp_path / folder


@pytest.mark.parametrize(("name", "frames", "file"), [
    ("Toy", "/vidrnn-pinned/otb/Toy/img", "Toy-8bae217b.npz"),
    ("序列" * 40 + "-walk", "/vidrnn-pinned/long/img", "序列" * 39 + "~bbafae7035b72b0b.npz"),
])
def test_a_sequence_keeps_the_evidence_file_name_older_versions_gave_it(name: str, frames: str, file: str,
                                                                        tmp_path: Path) -> None:
    sequence = TrackingSequence(name, Path(frames), np.array([[1.0, 1.0, 4.0, 4.0]]), "otb")
    assert EvidenceCache(tmp_path, "tracking", {"walks": 1}).path(sequence).name == file


def test_evidence_records_its_frames_and_their_new_times_in_the_fields_older_versions_wrote(tmp_path: Path) -> None:
    """Older files are read by these fields: the fingerprint of the frames' names, sizes and times, and of their
    bytes; renewed, the first holds the new times and the second stays."""
    frames = tmp_path / "Toy" / "img"
    frames.mkdir(parents=True)
    for index in range(3):
        frame = frames / f"{index + 1:04d}.jpg"
        frame.write_bytes(b"frame %d" % index)
        os.utime(frame, ns=(1_600_000_000_000_000_000 + index,) * 2)
    sequence = TrackingSequence("Toy", frames, np.array([[1.0, 1.0, 4.0, 4.0]] * 3), "otb")
    cache = EvidenceCache(tmp_path / "cache", "tracking", {"walks": 1})
    cache.save(sequence, _runs("Toy", 1.0))
    content = f"{frames.resolve()}|f94f02d49f244f9e|0|3|300fdb92f7bde72c"
    assert _stored_fingerprints(cache, sequence) == (f"{frames.resolve()}|f2faa268b81cc996|0|3|300fdb92f7bde72c",
                                                     content)
    for frame in frames.iterdir():
        os.utime(frame, ns=(1_700_000_000_000_000_000,) * 2)
    assert cache.load(sequence).evidence.max() == 1.0
    assert _stored_fingerprints(cache, sequence) == (f"{frames.resolve()}|38feb2f86ec40e1e|0|3|300fdb92f7bde72c",
                                                     content)


def _stored_fingerprints(cache: EvidenceCache, sequence: TrackingSequence) -> tuple[str, str]:
    with np.load(cache.path(sequence), allow_pickle=False) as stored:
        assert stored.files == ["evidence", "targets", "valid", "windows", "frame_size", "fingerprint", "content"]
        return str(stored["fingerprint"]), str(stored["content"])


def test_evidence_made_on_a_gpu_is_kept_apart_from_evidence_made_on_a_cpu(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The CNN computes in float16 autocast on CUDA and float32 on a CPU: the two give different evidence."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a machine with two GPUs
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    folders = {device: TrackingDataModule(cache_dir=str(tmp_path), device=device).cache.folder
               for device in ("cpu", "cuda", "cuda:1")}
    assert folders["cpu"] != folders["cuda"] == folders["cuda:1"]


def test_another_seeds_tracking_demo_is_refused_before_anything_is_generated(tmp_path: Path) -> None:
    """data.seed seeds the demo's generator too: a fit with another seed replaced the demo the evidence cache and
    the trained heads were made from, under the same sequence names."""
    demo = tmp_path / "demo_tracking"
    (demo / "train").mkdir(parents=True)
    (demo / DEMO_MARKER).write_text(_tracking_marker(0))  # what a complete generation with seed 0 leaves
    TrackingDataModule(root="demo", demo_dir=str(demo), cache_dir=str(tmp_path / "cache"), seed=0)
    with pytest.raises(ValueError, match=f"seed 1 generates other videos.* a data.demo_dir of its own, such as "
                                         f"{demo}-seed1"):
        TrackingDataModule(root="demo", demo_dir=str(demo), cache_dir=str(tmp_path / "cache"), seed=1)
    assert sorted(path.name for path in demo.iterdir()) == ["train", DEMO_MARKER]


def test_a_tracking_demo_marker_that_is_a_folder_is_refused_naming_it(tmp_path: Path) -> None:
    """It ended in an IsADirectoryError traceback."""
    demo = tmp_path / "demo_tracking"
    (demo / DEMO_MARKER).mkdir(parents=True)
    with pytest.raises(FileExistsError, match=f"{demo / DEMO_MARKER} is a folder, not the marker file"):
        TrackingDataModule(root="demo", demo_dir=str(demo), cache_dir=str(tmp_path / "cache"), seed=0)
    assert [path.name for path in demo.iterdir()] == [DEMO_MARKER]


# --- splits of the tracking data module --------------------------------------------------------------------------


def _tree(root: Path, *folders: str) -> Path:
    """Tiny OTB sequences at ``root/folder`` for each of ``folders``."""
    for folder in folders:
        write_otb(root / folder, 3, ["1,1,4,4"] * 3)
    return root


def _split_names(module: TrackingDataModule, *splits: str) -> list[list[str]]:
    return [[sequence.name for sequence in module.sequences(split)] for split in splits]


def test_val_sequences_keep_the_test_split_out_of_training(tmp_path: Path) -> None:
    """With ``val_sequences``, training takes the sequences at any depth under root: but never those of root/test
    (the default test split) or of data.test_root."""
    root = _tree(tmp_path / "root", "train/Couple", "val/Crossing", "test/Football1", "bench/Jumping")
    module = TrackingDataModule(root=str(root), val_sequences=["Crossing"], cache_dir=str(tmp_path / "cache"))
    assert _split_names(module, "train", "val", "test") == [["Couple", "Jumping"], ["Crossing"], ["Football1"]]
    module = TrackingDataModule(root=str(root), val_sequences=["Crossing"], test_root=str(root / "bench"),
                                cache_dir=str(tmp_path / "cache"))
    assert _split_names(module, "train", "val", "test") == [["Couple"], ["Crossing"], ["Jumping"]]
    with pytest.raises(ValueError, match="not under"):
        TrackingDataModule(root=str(root), val_sequences=["Football1"])


@pytest.mark.parametrize("broken", ["empty", "malformed"])
def test_a_fit_never_reads_a_broken_test_folder_and_vidrnn_test_reports_it(tmp_path: Path, broken: str) -> None:
    """Training and validation must not fail on the test side they never read (an empty test/, or one holding a
    malformed sequence); the test split itself still refuses it, saying why."""
    root = _tree(tmp_path / "root", "train/Couple", "val/Crossing")
    if broken == "empty":
        (root / "test").mkdir()
    else:
        (root / "test" / "NoImages").mkdir(parents=True)
        (root / "test" / "NoImages" / "groundtruth_rect.txt").write_text("1,1,4,4\n")
    for options in ({}, {"val_sequences": ["Crossing"]}):
        module = TrackingDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), **options)
        assert _split_names(module, "train", "val") == [["Couple"], ["Crossing"]]
        with pytest.raises((FileNotFoundError, ValueError), match="no tracking sequences found|without an img/"):
            module.sequences("test")


def test_sequence_entries_end_a_link_cycle_and_pass_over_hidden_things(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root", "a/Couple")
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)
    write_otb(root / ".trash" / "Old", 2, ["1,1,4,4"] * 2)
    assert [entry.folder.name for entry in sequence_entries(root)] == ["Couple"]


def test_sequence_entries_refuse_folders_they_cannot_list_or_follow(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A sequence folder linked to an unmounted disk, or one this user may not list, left the benchmark smaller
    without a word: its scores could no longer be compared."""
    root = _tree(tmp_path / "root", "a/Couple", "b/Crossing")
    (root / "usb").symlink_to(tmp_path / "unmounted")
    deny_listing(monkeypatch, root / "b")
    with pytest.raises(ValueError) as refused:
        sequence_entries(root)
    assert f"{root / 'usb'}: is a symbolic link to {tmp_path / 'unmounted'}, which does not exist" in str(refused.value)
    assert f"{root / 'b'}: cannot be listed: permission denied" in str(refused.value)


def test_a_tld_folder_passes_over_hidden_video_files(tmp_path: Path) -> None:
    """macOS's ``._clip.avi`` beside every video copied from a Mac: not a second video of the sequence."""
    folder = tmp_path / "01_toy"
    write_video(folder / "toy.avi", 3, size=(32, 32))
    (folder / "._toy.avi").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / "gt.txt").write_text("1,1,10,10\n" * 3)
    assert load_sequence(folder).frames.name == "toy.avi"


def test_a_sequence_whose_frames_change_size_is_refused_not_stretched(tmp_path: Path) -> None:
    """Its boxes are in each frame's own pixels: stretched to the first frame's size, a later frame would no longer
    match its box."""
    folder = write_otb(tmp_path / "Toy", 2, ["1,1,4,4"] * 3)
    cv2.imwrite(str(folder / "img" / "0003.jpg"), np.zeros((64, 64, 3), dtype=np.uint8))
    sequence = load_sequence(folder)
    with pytest.raises(VideoReadError, match="frame 2 is 64x64 pixels"):
        sequence.read()
    with pytest.raises(VideoReadError, match="frame 2 is 64x64 pixels"):
        list(sequence.iter_frames())


@pytest.mark.parametrize("where", ["extra_train", "test_root", "link"])
def test_test_sequences_that_also_train_or_validate_are_refused(tmp_path: Path, where: str) -> None:
    """The same frames in test and in training or validation, however they got there, refuse to start."""
    root = _tree(tmp_path / "root", "train/Couple", "val/Crossing", "test/Football1")
    options = {"extra_train": {"extra_train": [str(root / "test")]}, "test_root": {"test_root": str(root / "val")},
               "link": {}}[where]
    if where == "link":
        (root / "train" / "Alias").symlink_to(root / "test" / "Football1", target_is_directory=True)
    module = TrackingDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), **options)
    shared = "Crossing" if where == "test_root" else "Football1"
    for split in ("train", "test"):
        with pytest.raises(ValueError, match=rf"the test sequence {shared} .*data.test_root"):
            module.sequences(split)


def test_an_extra_training_folder_trains_each_of_its_sequences_once(tmp_path: Path) -> None:
    """Each listing of the training sequences appended data.extra_train's to the root's cached list in place: the
    training split held the extra sequence twice (counted double in every epoch), and more with each split asked."""
    root = _tree(tmp_path / "root", "train/Couple", "val/Crossing", "test/Football1")
    extra = _tree(tmp_path / "extra", "Walking")
    module = TrackingDataModule(root=str(root), extra_train=[str(extra)], cache_dir=str(tmp_path / "cache"))
    for split in ("val", "test", "train"):
        module.sequences(split)
    assert [sequence.name for sequence in module.sequences("train")] == ["Couple", "Walking"]


def test_val_sequences_name_a_folder_or_its_targets_never_a_target_apart_from_its_sibling(tmp_path: Path) -> None:
    """OTB's Jogging holds two targets, Jogging-1 and Jogging-2, in the same frames: naming the folder validates on
    both; naming one target alone would validate on the frames the other trains on."""
    root = _tree(tmp_path / "root", "Couple", "Crossing")
    jogging = write_images(root / "Jogging" / "img", 3).parent
    for target in (1, 2):
        (jogging / f"groundtruth_rect.{target}.txt").write_text("1,1,4,4\n" * 3)
    for names in (["Jogging"], ["Jogging-1", "Jogging-2"]):
        module = TrackingDataModule(root=str(root), val_sequences=names, cache_dir=str(tmp_path / "cache"))
        assert _split_names(module, "train", "val") == [["Couple", "Crossing"], ["Jogging-1", "Jogging-2"]]
    module = TrackingDataModule(root=str(root), val_sequences=["Crossing", "Jogging-1"], cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"Jogging-1 .* training sequence Jogging-2 .*name the folder"):
        module.sequences("val")
    with pytest.raises(ValueError, match="not under.*: Jog$"):
        TrackingDataModule(root=str(root), val_sequences=["Jog"])


def test_a_test_sequence_whose_ground_truth_holds_only_the_first_box_is_refused(tmp_path: Path) -> None:
    """GOT-10k's test split gives only the first box (its server scores the rest): read as it is, the sequence is one
    frame long, scores nothing and drops out of the mean while the summary still counts it."""
    root = _tree(tmp_path / "root", "train/Couple", "val/Crossing")
    bench = tmp_path / "bench"
    write_got10k(bench / "GOT-10k_Val_000001", ["1,2,10,12"] * 4, cover=[8] * 4)
    got_test = write_got10k(bench / "GOT-10k_Test_000001", ["1,2,10,12"])
    write_images(got_test, 4, "{:08d}.jpg")
    module = TrackingDataModule(root=str(root), test_root=str(bench), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"GOT-10k_Test_000001/groundtruth.txt.*holds only the first box.*GOT-10k"):
        module.sequences("test")


def _with_first_box(folder: Path, line: str) -> Path:
    truth = folder / "groundtruth_rect.txt"
    truth.write_text("\n".join([line, *truth.read_text().splitlines()[1:]]) + "\n")
    return folder


@pytest.mark.parametrize(("train_box", "test_box", "train_says", "test_says"), [
    ("2,2,1,4", "2,2,1.5,1.5", "at least 2x2", r"at least 2x2 pixels; got w=1.5, h=1.5"),
    ("40,40,8,8", "3,90,8,8", "lies outside the 32x32 frame", r"the first box \[2.0, 89.0, 8.0, 8.0\] lies outside the "
     r"32x32 frame \(.*Worse/groundtruth_rect.txt, x,y,w,h 0-based: .*\): likely .*Worse/groundtruth_rect.txt does "
     r"not hold x,y,w,h as its layout reads it \(corners x1,y1,x2,y2 read as x,y,w,h\), or its boxes were annotated "
     "at another resolution than these frames"),
])
def test_a_first_box_too_small_or_outside_the_frame_is_refused_for_test_and_left_out_of_training(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, train_box: str, test_box: str, train_says: str,
        test_says: str) -> None:
    """The tracker needs a first box of at least 2x2 pixels inside the frame: found at load time, not after hours of
    evaluation. Boxes annotated at 3x the frames' resolution put the first box outside: it was trained on without a
    word, and a test sequence like it crashed vidrnn test once the others were tracked. Refused, it is said with the
    likely causes that the warning about boxes outside the frames names (it named the file alone)."""
    root = _tree(tmp_path / "root", "train/Couple", "train/Bad", "val/Crossing", "test/Football1", "test/Worse")
    _with_first_box(root / "train" / "Bad", train_box)
    _with_first_box(root / "test" / "Worse", test_box)
    module = TrackingDataModule(root=str(root), cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.tracking_datamodule"):
        assert _split_names(module, "train") == [["Couple"]]
    assert "Bad" in caplog.text and train_says in caplog.text and "left out of train" in caplog.text
    with pytest.raises(ValueError, match=f"Worse: .*{test_says}"):
        module.sequences("test")


def test_a_sequence_of_one_frame_is_left_out_of_training_and_validation_and_refused_for_test(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A tracker is given the first frame and answers from the second on: a one-frame sequence has nothing to track.
    In validation it crashed the fit (an LSTM over no steps); in training it was kept without a word."""
    root = _tree(tmp_path / "root", "train/Couple", "val/Crossing", "test/Football1")
    for split in ("train", "val", "test"):
        write_otb(root / split / "Single", 1, ["1,1,4,4"] * 3)
    module = TrackingDataModule(root=str(root), cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.tracking_datamodule"):
        assert _split_names(module, "train", "val") == [["Couple"], ["Crossing"]]
    left_out = [record.getMessage() for record in caplog.records
                if record.name == "vidrnn.data.tracking_datamodule" and "Single" in record.getMessage()]
    assert len(left_out) == 2 and all("nothing to track: one frame with its box" in message and "1 frame" in message and "3 boxes" in message
                                      for message in left_out), left_out
    assert "left out of train" in left_out[0] and "left out of val" in left_out[1]
    with pytest.raises(ValueError, match=r"Single: nothing to track: one frame with its box"):
        module.sequences("test")


def test_what_every_process_reads_alike_is_warned_about_by_rank_zero_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process of a DDP fit lists, loads and reads the cached runs of the same sequences: each said every
    warning about them again (frames without boxes, frames no sequence reads, a sequence left out, a video's
    implausible frame rate, a refused simulation)."""
    from lightning.pytorch.utilities import rank_zero_only

    root = _tree(tmp_path / "root", "train/Couple", "val/Crossing")
    write_otb(root / "train" / "Long", 5, ["1,1,4,4"] * 3)
    write_otb(root / "train" / "Single", 1, ["1,1,4,4"])
    write_images(root / "train" / "stray", 2)
    stating_rate(write_video(root / "val" / "01_fast" / "fast.avi", 3, size=(32, 32)), 1000)
    (root / "val" / "01_fast" / "gt.txt").write_text("1,1,10,10\n" * 3)
    expected = ("last 2 frames dropped", "belong to no sequence", "Single", "not a plausible frame rate",
                "Couple: left out of train: broken")
    for rank in (1, 0):
        monkeypatch.setattr(rank_zero_only, "rank", rank)
        module = TrackingDataModule(root=str(root), cache_dir=str(tmp_path / "cache"))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="vidrnn"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module.sequences("val")
            for sequence in module.sequences("train"):
                module.cache.save(sequence, Refused("broken") if sequence.name == "Couple" else _runs(sequence.name, 1))
            module._split_runs("train")
        said = caplog.text + "".join(str(warning.message) for warning in caught)
        assert [phrase in said for phrase in expected] == [rank == 0] * len(expected), said


def test_a_test_folder_without_sequences_says_what_a_sequence_looks_like(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root", "train/Couple", "val/Crossing")
    bench = tmp_path / "trackingnet" / "TRAIN_0"
    write_images(bench / "frames" / "seqA", 3, "{}.jpg", first=0)
    (bench / "anno").mkdir()
    (bench / "anno" / "seqA.txt").write_text("1,2,10,12\n" * 3)
    module = TrackingDataModule(root=str(root), test_root=str(tmp_path / "trackingnet"),
                                cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as error:
        module.sequences("test")
    for expected in ("no tracking sequences found", "groundtruth_rect.txt", "groundtruth.txt", "gt.txt", "GOT-10k",
                     "LaSOT", "anno", "apart from the frames"):
        assert expected in str(error.value)


def test_frames_no_sequence_reads_are_named_once_per_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """UAV123 as published (anno/UAV123/<seq>.txt, data_seq/UAV123/<seq>/) beside one sequence re-laid by hand: the
    re-laid one is tested and the rest named, once, however often the splits are listed."""
    root = _tree(tmp_path / "root", "train/Couple", "val/Crossing")
    bench = tmp_path / "uav123"
    write_images(bench / "data_seq" / "UAV123" / "bike1", 3, "{:06d}.jpg")
    (bench / "anno" / "UAV123").mkdir(parents=True)
    (bench / "anno" / "UAV123" / "bike1.txt").write_text("1,2,10,12\n" * 3)
    write_otb(bench / "as_otb" / "bike1", 3, ["1,1,4,4"] * 3)
    module = TrackingDataModule(root=str(root), test_root=str(bench), cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.tracking_sequences"):
        assert _split_names(module, "train", "val", "test") == [["Couple"], ["Crossing"], ["bike1"]]
    warnings = [record.getMessage() for record in caplog.records if "belong to no sequence" in record.getMessage()]
    assert len(warnings) == 1 and "data_seq/UAV123/bike1" in warnings[0] and "anno/UAV123" in warnings[0]


def test_runs_are_recorded_against_the_frames_they_were_simulated_from(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs were fingerprinted when saved, after their simulation: a frame edited meanwhile (the simulation of a
    long sequence takes minutes) had the old frames' runs recorded as the new frames' and served from then on."""
    from vidrnn.data import tracking_datamodule

    root = _tree(tmp_path / "root", "train/Couple", "val/Crossing")
    module = TrackingDataModule(root=str(root), val_sequences=["Crossing"], cache_dir=str(tmp_path / "cache"))

    def edits_a_frame_meanwhile(search: object, name: str, frames, *rest: object) -> EvidenceRuns:
        list(frames)
        frame = sorted((next(root.glob(f"*/{name}")) / "img").iterdir())[1]
        cv2.imwrite(str(frame), np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8))
        return _runs(name, 1.0)

    monkeypatch.setattr(tracking_datamodule, "MatchingSearch", lambda *arguments: None)
    monkeypatch.setattr(tracking_datamodule, "simulate_runs", edits_a_frame_meanwhile)
    module.prepare_data()
    sequences = module.sequences("train") + module.sequences("val")
    assert len(sequences) == 2 and [module.cache.load(sequence) for sequence in sequences] == [None, None]
