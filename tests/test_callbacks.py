from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from vidrnn.callbacks import GradientNormLogger, input_step_grad_norms, parameter_grad_norms, position_key

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.* is deprecated"),
]

INPUT_DIM, HIDDEN, CLASSES = 4, 8, 3
CLIP_VALUE = 0.01


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Run torch single-threaded: these models are tiny, and on a small shared CPU the thread pool's hand-offs can
    make each LSTM step hundreds of times slower than the arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyClassifier(LightningModule):
    """A recurrent classifier over ``[B,T,D]`` sequences that follows the input-gradient protocol when asked to.

    ``protocol=False`` gives a module that never exposes its inputs, as a third-party module would.
    """

    def __init__(self, cell: type[nn.RNNBase] = nn.LSTM, protocol: bool = True, **rnn_options) -> None:
        super().__init__()
        self.rnn = cell(INPUT_DIM, HIDDEN, batch_first=True, **rnn_options)
        self.head = nn.Linear(HIDDEN, CLASSES)
        self.protocol = protocol
        self.track_input_gradients = False
        self.tracked_steps: list[bool] = []

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_index: int) -> Tensor:
        features, lengths, labels = batch
        self.tracked_steps.append(self.track_input_gradients)
        if self.protocol and self.track_input_gradients:
            features = features.clone().requires_grad_(True)
            features.retain_grad()
            self.last_input_features, self.last_input_lengths = features, lengths
        outputs, _ = self.rnn(features)
        last = outputs[torch.arange(len(lengths)), lengths - 1]
        return nn.functional.cross_entropy(self.head(last), labels)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def random_batches(total_length: int, min_length: int, batch_size: int = 8) -> DataLoader:
    """Random sequences of varied length (padding filled with garbage), random labels."""
    generator = torch.Generator().manual_seed(0)
    size = 4 * batch_size
    features = torch.randn(size, total_length, INPUT_DIM, generator=generator)
    lengths = torch.randint(min_length, total_length + 1, (size,), generator=generator)
    features[torch.arange(total_length)[None, :] >= lengths[:, None]] = 1e3
    labels = torch.randint(0, CLASSES, (size,), generator=generator)
    return DataLoader(TensorDataset(features, lengths, labels), batch_size=batch_size)


def repeated_batch(total_length: int = 12, min_length: int = 3, batch_size: int = 8) -> DataLoader:
    """Four copies of one batch of :func:`random_batches`: every micro-batch the same."""
    features, lengths, labels = next(iter(random_batches(total_length, min_length, batch_size)))
    return DataLoader(TensorDataset(*(tensor.repeat(4, *[1] * (tensor.dim() - 1))
                                      for tensor in (features, lengths, labels))), batch_size=batch_size)


def fit(module: LightningModule, callback: GradientNormLogger, directory: Path, max_steps: int = 6,
        total_length: int = 12, min_length: int = 3, batches: DataLoader | None = None,
        accumulate_grad_batches: int = 1) -> list[dict[str, str]]:
    """Train on CPU with heavy gradient clipping (on ``batches``, else random ones); return the rows of the CSV
    log."""
    logger = CSVLogger(directory)
    trainer = Trainer(max_steps=max_steps, log_every_n_steps=1, logger=logger, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=CLIP_VALUE,
                      accelerator="cpu", callbacks=[callback], accumulate_grad_batches=accumulate_grad_batches)
    trainer.fit(module, batches or random_batches(total_length, min_length))
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def logged(rows: list[dict[str, str]], key: str) -> dict[int, float]:
    """Values of one key by step, from the rows that carry it."""
    return {int(row["step"]): float(row[key]) for row in rows if row.get(key)}


def test_logs_per_layer_total_and_per_step_norms(tmp_path: Path) -> None:
    torch.manual_seed(0)
    rows = fit(TinyClassifier(), GradientNormLogger(log_every_n_steps=1), tmp_path)
    keys = set(rows[0])
    for name in ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "head.weight", "total"):
        assert f"grad_norm/{name}" in keys
    assert "grad_norm/rnn.bias_hh_l0" not in keys
    for position in (0.0, 0.25, 0.5, 0.75, 1.0):
        values = logged(rows, position_key(position))
        assert sorted(values) == list(range(6))
        assert all(value >= 0.0 and math.isfinite(value) for value in values.values())
    assert all(value > 0.0 for value in logged(rows, position_key(1.0)).values())


def test_accumulated_steps_log_the_last_micro_batchs_true_norms(tmp_path: Path) -> None:
    """Lightning divides each micro-batch's loss by accumulate_grad_batches: the per-position norms were divided by
    it too (the per-layer ones, the accumulated mean gradient, were not). Two micro-batches equal to one whole batch
    now log what that batch logs alone, per layer and per position."""
    logs = []
    for accumulate in (1, 2):
        torch.manual_seed(0)
        rows = fit(TinyClassifier(), GradientNormLogger(log_every_n_steps=1), tmp_path / str(accumulate), max_steps=1,
                   batches=repeated_batch(), accumulate_grad_batches=accumulate)
        logs.append(next(row for row in rows if row.get("grad_norm/total")))
    keys = [key for key in logs[0] if key.startswith("grad_norm/")]
    assert position_key(0.0) in keys and "grad_norm/rnn.weight_hh_l0" in keys
    for key in keys:
        assert float(logs[1][key]) == pytest.approx(float(logs[0][key]), rel=1e-5), key


def test_total_norm_is_taken_before_clipping(tmp_path: Path) -> None:
    """Clipping to 0.01 would leave a total norm of at most 0.01; the logged norm must be the larger, raw one."""
    torch.manual_seed(0)
    totals = logged(fit(TinyClassifier(), GradientNormLogger(log_every_n_steps=1), tmp_path), "grad_norm/total")
    assert len(totals) == 6
    assert min(totals.values()) > 10 * CLIP_VALUE


def test_logs_only_every_nth_step_and_tracks_inputs_only_then(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = TinyClassifier()
    rows = fit(module, GradientNormLogger(log_every_n_steps=2), tmp_path)
    assert sorted(logged(rows, "grad_norm/total")) == [0, 2, 4]
    assert sorted(logged(rows, position_key(0.0))) == [0, 2, 4]
    assert module.tracked_steps == [True, False, True, False, True, False]
    assert module.track_input_gradients is False


def test_module_without_protocol_gets_parameter_norms_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    rows = fit(TinyClassifier(protocol=False), GradientNormLogger(log_every_n_steps=1), tmp_path, max_steps=2)
    assert sorted(logged(rows, "grad_norm/total")) == [0, 1]
    assert not any(key.startswith("grad_norm/input_pos") for key in rows[0])


def test_tanh_rnn_shows_vanishing_gradients_over_a_long_clip(tmp_path: Path) -> None:
    """With small recurrent weights, how much the first frame moves the loss decays geometrically with distance."""
    torch.manual_seed(0)
    module = TinyClassifier(cell=nn.RNN, nonlinearity="tanh")
    with torch.no_grad():
        module.rnn.weight_hh_l0.mul_(0.5)
    rows = fit(module, GradientNormLogger(log_every_n_steps=1), tmp_path, max_steps=1, total_length=60,
               min_length=60)
    first, last = logged(rows, position_key(0.0))[0], logged(rows, position_key(1.0))[0]
    assert 0.0 <= first < 1e-6 * last


def test_input_step_norms_read_relative_positions_of_valid_steps_only() -> None:
    grad = torch.full((2, 6, 3), 1e6)
    for row, length in enumerate((5, 3)):
        grad[row, :length] = 0.0
        grad[row, :length, 0] = torch.arange(1.0, length + 1)
    norms = input_step_grad_norms(grad, torch.tensor([5, 3]), positions=(0.0, 0.5, 1.0))
    torch.testing.assert_close(norms, torch.tensor([1.0, (3.0 + 2.0) / 2, (5.0 + 3.0) / 2]))


def test_parameter_total_norm_matches_what_clipping_measures() -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    module(torch.randn(5, 3)).square().sum().backward()
    norms = parameter_grad_norms(module)
    assert set(norms) == {"grad_norm/0.weight", "grad_norm/2.weight", "grad_norm/total"}
    expected = nn.utils.clip_grad_norm_(module.parameters(), max_norm=float("inf"))
    torch.testing.assert_close(norms["grad_norm/total"], expected)


def test_parameter_norms_are_each_matrix_gradients_l2_norm_under_the_logged_names() -> None:
    """The names are metrics.csv's columns: ``grad_norm/<parameter>`` for matrices, ``grad_norm/total`` for all."""
    torch.manual_seed(0)
    module = TinyClassifier(cell=nn.GRU, num_layers=2)
    module.training_step((torch.randn(5, 7, INPUT_DIM), torch.tensor([7, 3, 5, 1, 7]), torch.tensor([0, 1, 2, 0, 1])),
                         0).backward()
    norms = parameter_grad_norms(module)
    matrices = {name: param.grad for name, param in module.named_parameters() if param.dim() >= 2}
    assert list(norms) == [f"grad_norm/{name}" for name in matrices] + ["grad_norm/total"]
    for name, grad in matrices.items():
        assert norms[f"grad_norm/{name}"].item() == torch.linalg.vector_norm(grad).item()
    every = torch.cat([param.grad.flatten() for param in module.parameters()])
    assert norms["grad_norm/total"].item() == pytest.approx(torch.linalg.vector_norm(every).item(), rel=1e-6)
    assert parameter_grad_norms(nn.Linear(2, 2)) == {}


@pytest.mark.parametrize("options", [{"log_every_n_steps": 0}, {"positions": ()}, {"positions": (0.0, 1.5)}])
def test_bad_settings_are_refused(options: dict) -> None:
    with pytest.raises(ValueError):
        GradientNormLogger(**options)
