"""Gradient norms in the training log: the vanishing- and exploding-gradient picture, while the model trains.

Two views are logged, both cheap and both only on logging steps:

* **Per layer** — the L2 norm of each weight matrix's gradient (``weight_ih_l0``, ``weight_hh_l0``,
  ``weight_hh_l0_reverse``, the head's ``weight``...) and the total over all parameters. A recurrent matrix whose
  gradient norm spikes by orders of magnitude is the exploding-gradient signature.
* **Per time step** — the norm of ``dLoss / d(input features at step t)`` at a few relative positions in each clip
  (first, 25 %, 50 %, 75 %, last valid step). How much the first frame still moves the loss, compared with the last,
  is the vanishing-gradient signature. The textbook expects a tanh RNN's curve to fall by orders of magnitude
  towards the first frame and gating (LSTM, GRU) to flatten it. Measured here, the fall depends on the
  initialisation more than on gating: a tanh RNN with its recurrent weights halved falls below 1e-6 over 60 steps
  (``tests/test_callbacks.py``), while ``TemporalEncoder``'s freshly initialised cells (orthogonal recurrent
  weights, gate biases 1) keep at step 0, over 100 steps, rnn 8.3e-03, lstm 5.4e-02 and gru 3.1e-08 of the last
  step's gradient (``notebooks/03_rnn_cells_and_gradients.ipynb``, one initialisation): the GRU's falls the most.
  A bidirectional encoder's backward direction reads the clip from its end, so there the curve is U-shaped and the
  middle of the clip is the part the loss sees least.

The norms are taken **before gradient clipping**, so a user sees the explosion that clipping then tames. Lightning
guarantees that order: ``Precision._after_closure`` (``lightning/pytorch/plugins/precision/precision.py``) runs::

    call._call_callback_hooks(trainer, "on_before_optimizer_step", optimizer)
    call._call_lightning_module_hook(trainer, "on_before_optimizer_step", optimizer)
    self._clip_gradients(model, optimizer, trainer.gradient_clip_val, ...)

and the hook's own documentation (``lightning/pytorch/core/hooks.py``) says "If clipping gradients, the gradients will
not have been clipped yet." With 16-bit mixed precision, ``MixedPrecision.optimizer_step`` unscales the parameters'
gradients before that call, so parameter norms are true norms too.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import grad_norm, rank_zero_info
from torch import Tensor, nn
from torch.optim import Optimizer

from vidrnn.distributed import gather_rows

__all__ = ["DEFAULT_POSITIONS", "PREDICTION_COLUMNS", "ClipPredictionWriter", "GradientNormLogger", "input_step_grad_norms", "parameter_grad_norms", "position_key"]

#: The columns of ``vidrnn predict``'s ``predictions.csv``: the clip (its path under the videos root), its true label,
#: the top-1 predicted label and that label's probability.
PREDICTION_COLUMNS = ("clip", "true_label", "predicted_label", "probability")

#: Relative positions in a clip (0 = first valid step, 1 = last) at which input-gradient norms are logged.
DEFAULT_POSITIONS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)

#: How Lightning's ``grad_norm`` names L2 norms: ``grad_2.0_norm/<parameter name>`` and ``grad_2.0_norm_total``.
_LIGHTNING_L2 = "grad_2.0_norm"


def parameter_grad_norms(module: nn.Module) -> dict[str, Tensor]:
    """L2 gradient norm of each weight matrix, keyed ``grad_norm/<parameter name>``, plus ``grad_norm/total``.

    Lightning's ``grad_norm`` computes them; this keeps the names the logs have always had. Only matrices
    (``dim >= 2``) get a key of their own: they carry the recurrence and the layer-to-layer maps that explode or
    vanish, and leaving out biases and normalisation gains keeps the log readable. ``total`` covers every parameter
    with a gradient, so it is the same norm that ``gradient_clip_val`` compares against. Returns an empty dict when no
    parameter has a gradient.
    """
    norms = grad_norm(module, norm_type=2)
    if not norms:
        return {}
    per_layer = {f"grad_norm/{name}": norms[f"{_LIGHTNING_L2}/{name}"] for name, param in module.named_parameters()
                 if param.grad is not None and param.grad.dim() >= 2}
    return per_layer | {"grad_norm/total": norms[f"{_LIGHTNING_L2}_total"]}


def input_step_grad_norms(grad: Tensor, lengths: Tensor, positions: Sequence[float] = DEFAULT_POSITIONS) -> Tensor:
    """Batch mean of ``‖dLoss/dx_t‖`` at each relative position; ``grad [B,T,D]``, ``lengths [B]`` → ``[P]``.

    Clips differ in length, so a position is relative to each clip's own valid steps: position ``p`` is step
    ``round(p * (length - 1))``, and 0 and 1 are exactly the first and the last valid step. Padded steps are never
    read. Averaging norms (rather than taking the norm of the batch-mean gradient) keeps clips whose gradients point
    different ways from cancelling out.
    """
    last = (lengths.to(grad.device, torch.int64) - 1).float()
    fractions = torch.tensor(list(positions), dtype=torch.float32, device=grad.device)
    steps = torch.round(fractions[:, None] * last[None, :]).long()
    rows = torch.arange(grad.shape[0], device=grad.device)
    picked = grad[rows[None, :], steps]
    return torch.linalg.vector_norm(picked, dim=-1, dtype=torch.float32).mean(dim=1)


def position_key(position: float) -> str:
    """Log key of the input-gradient norm at a relative position, e.g. ``grad_norm/input_pos_0.25``."""
    return f"grad_norm/input_pos_{position:.2f}"


class GradientNormLogger(Callback):
    """Log gradient norms per layer and per time step, every ``log_every_n_steps`` optimizer steps.

    Steps ``0, n, 2n, ...`` are logged, so the very first update (the freshly initialised model) is always in the
    log. The values go straight to the trainer's loggers at ``trainer.global_step``, not through ``self.log``: the
    trainer writes ``self.log`` values only on its own ``log_every_n_steps`` cadence and would silently drop norms
    computed on other steps. Nothing is computed on other steps, on ranks other than 0, or without a logger.

    Per-time-step norms need the LightningModule's help, because the input features are not a parameter and their
    gradient is normally not kept. The protocol:

    * Before each training batch the callback sets ``pl_module.track_input_gradients`` — ``True`` only when that
      step will be logged (so the extra gradient is only paid for then), ``False`` otherwise and after training.
    * When the flag is set, the module's ``training_step`` makes its features tensor require and retain a gradient
      and exposes it as ``pl_module.last_input_features [B,T,D]`` with ``pl_module.last_input_lengths [B]``.

    A module that does not expose those attributes (or whose tensor got no gradient) simply gets no per-step keys;
    that is not an error. With gradient accumulation the per-layer norms are of the gradient the optimizer applies (the
    accumulated micro-batches' sum divided by ``accumulate_grad_batches``: their mean, except in an epoch's last,
    shorter window, which Lightning divides by the same number) and the per-step ones of the last micro-batch's own
    loss: Lightning divides each micro-batch's loss by ``accumulate_grad_batches``, so the input gradient is
    multiplied back by it. Under 16-bit mixed precision it is divided by the loss scale, since the scaler unscales
    only the optimizer's parameters.

    Args:
        log_every_n_steps: log on every ``n``-th optimizer step (``n >= 1``).
        positions: relative positions in ``[0, 1]`` within each clip's valid steps, each logged as
            ``grad_norm/input_pos_<p>``.
    """

    def __init__(
        self,
        log_every_n_steps: int = 25,
        positions: Sequence[float] = DEFAULT_POSITIONS,
    ) -> None:
        super().__init__()
        if log_every_n_steps < 1:
            raise ValueError(f"log_every_n_steps must be at least 1, got {log_every_n_steps}")
        if not positions or any(not 0.0 <= position <= 1.0 for position in positions):
            raise ValueError(f"positions must be a non-empty list of fractions in [0, 1], got {list(positions)}")
        self.log_every_n_steps = log_every_n_steps
        self.positions = tuple(float(position) for position in positions)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any,
                             batch_idx: int) -> None:
        """Ask the module to keep its input gradient, only for a step that will be logged."""
        pl_module.track_input_gradients = self._should_log(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Leave the module not tracking, so later use of it pays nothing."""
        pl_module.track_input_gradients = False

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer) -> None:
        """Compute and log the norms: gradients are complete here and not yet clipped (see the module docstring)."""
        if not self._should_log(trainer):
            return
        norms = parameter_grad_norms(pl_module) | self._input_norms(trainer, pl_module)
        if norms:
            metrics = _as_floats(norms)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)

    def _should_log(self, trainer: Trainer) -> bool:
        """Log this optimizer step? Only when it is due, on rank 0, and with a logger to write to."""
        return (bool(trainer.loggers) and trainer.is_global_zero
                and trainer.global_step % self.log_every_n_steps == 0)

    def _input_norms(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Tensor]:
        """Per-position input-gradient norms, or nothing when the module did not keep its features' gradient."""
        features = getattr(pl_module, "last_input_features", None)
        lengths = getattr(pl_module, "last_input_lengths", None)
        if features is None or lengths is None or features.grad is None:
            return {}
        norms = input_step_grad_norms(features.grad, lengths, self.positions) / _loss_factor(trainer)
        return {position_key(position): norm for position, norm in zip(self.positions, norms)}


def _loss_factor(trainer: Trainer) -> float:
    """The factor a micro-batch's loss was multiplied by before ``backward``: the mixed-precision ``GradScaler``'s
    scale (else 1) over ``accumulate_grad_batches``, by which Lightning divides it."""
    scaler = getattr(trainer.precision_plugin, "scaler", None)
    scale = float(scaler.get_scale()) if scaler is not None else 1.0
    return scale / trainer.accumulate_grad_batches


def _as_floats(tensors: dict[str, Tensor]) -> dict[str, float]:
    """Scalar tensors to Python floats with a single device-to-host copy."""
    device = next(iter(tensors.values())).device
    values = torch.stack([tensor.detach().to(device, torch.float32) for tensor in tensors.values()]).tolist()
    return dict(zip(tensors, values))


class ClipPredictionWriter(BasePredictionWriter):
    """Writes ``predictions.csv`` (:data:`PREDICTION_COLUMNS`: clip, true label, predicted label, its probability)
    into the run's log folder.

    ``vidrnn predict`` adds it, so a prediction run leaves a file a person can open; without it Lightning would
    compute the predictions and discard them. Under DDP every rank predicts its own share of the clips; the rows are
    gathered and rank 0 writes them all, one per clip, sorted by clip.
    """

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")

    def write_on_epoch_end(self, trainer: Trainer, pl_module: LightningModule, predictions: Sequence[Any],
                           batch_indices: Sequence[Any]) -> None:
        names = pl_module.class_names
        rows = []
        for batch in predictions:
            best, index = batch["probabilities"].max(dim=1)
            for key, label, chosen, probability in zip(batch["keys"], batch["labels"], index, best):
                rows.append([key, names[int(label)], names[int(chosen)], f"{float(probability):.6f}"])
        rows = gather_rows(rows)
        directory = Path(trainer.log_dir or ".")  # on every rank: under DDP, Lightning broadcasts it from rank 0
        if not trainer.is_global_zero:
            return
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "predictions.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(PREDICTION_COLUMNS)
            writer.writerows(sorted(rows))
        rank_zero_info(f"predictions written to {path}")
