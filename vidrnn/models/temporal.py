"""The temporal encoder: a stacked (bi)RNN/LSTM/GRU over a clip's per-frame features, pooled to one vector.

Clips differ in length, so a batch is a padded tensor ``[B,T,D]`` plus ``lengths``. Padding is a storage detail and
must never reach a result: the recurrent cell reads packed sequences (it never sees a padded step), "last" means the
last *valid* step, mean/max/attention pool over valid steps only, and padded steps of the per-step output are zero.
The property this buys, and that the tests check for every configuration, is that a clip's encoding does not change
when it is batched with longer or shorter clips.

``cell="none"`` is the non-recurrent baseline of the same family: the per-step outputs are the (normalised,
projected) frame features themselves, so ``pooling="mean"`` is exactly "mean of frame features". Comparing a
recurrent cell with that baseline is then a one-flag change, and the baseline is blind to frame order by
construction — the gap between the two measures what order is worth.

Order-aware models need not be recurrent. ``inputs="differences"`` (or ``"both"``) gives every step the change
since the previous frame, and ``cell="conv"`` is a temporal convolution (ReLU layers over a window of ``kernel_size``
steps; ``kernel_size=1`` makes it a per-step network, so over frame changes and mean-pooled it is "frame-difference
pooling"). A recurrent result counts only against these, not against the order-blind mean alone.

Two rows tell how much a temporal-order task can be solved without reading order (shortcuts, not baselines of the
task itself): ``inputs="magnitudes"`` gives every step the size of its change, ``|x_t - x_{t-1}|`` per feature, the
same for a clip and its reverse; pooled without order (``cell="none"`` or ``"conv"`` with ``kernel_size=1``, mean or
max) it can only tell how a clip moves and whether it jumps — enough to spot the cuts of a shuffled clip. And
``pooling="first"`` with ``cell="none"`` reads step 0 alone: which frame a clip starts on, which for a clip played
backwards is its last.

``residual=True`` puts the two in one model: each step's output is the projected frame feature plus a learned scale
(zero at initialisation) times the cell's output. The model starts as the order-blind baseline and the training data
decides how much temporal context to add; on small datasets, where a plain recurrent model memorises its training
clips and falls below the baseline, this keeps the frame evidence while still reading order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple, get_args

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = [
    "AdditiveAttention", "Cell", "EncoderOutput", "EncoderSpec", "Inputs", "Pooling", "TemporalConv", "TemporalEncoder",
    "frame_changes", "padding_mask", "reverse_padded",
]

Cell = Literal["rnn", "lstm", "gru", "conv", "none"]
Pooling = Literal["last", "mean", "max", "attention", "first"]
#: What each step shows the cell: the frame, its change since the previous frame, both side by side, or the size of the
#: change (per feature, without its sign).
Inputs = Literal["frames", "differences", "both", "magnitudes"]

_RNN_CLASSES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# How many gate blocks are stacked in each cell's weight matrices (PyTorch's order for the LSTM: i, f, g, o).
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
# The gate whose bias decides how much state is kept each step: the LSTM's forget gate, the GRU's update gate; both
# are the second block of their weight matrices.
_REMEMBER_GATE = {"lstm", "gru"}


class EncoderOutput(NamedTuple):
    """What the encoder returns for a batch.

    ``pooled [B,H']``: one vector per clip. ``steps [B,T,H']``: one vector per frame, zero at padded steps (a
    per-frame head such as a tracker reads these). ``mask [B,T]``: ``True`` at valid steps. ``weights [B,T]``: the
    attention weights (sum to 1 over valid steps, 0 on padding) with ``pooling="attention"``, else ``None`` — they
    show where in the clip the decision is made.
    """

    pooled: Tensor
    steps: Tensor
    mask: Tensor
    weights: Tensor | None


def frame_changes(frames: Tensor, mask: Tensor) -> Tensor:
    """``x_t - x_{t-1}`` at every valid step ``t >= 1``; zero at step 0 (nothing came before) and on padding."""
    changes = torch.zeros_like(frames)
    changes[:, 1:] = frames[:, 1:] - frames[:, :-1]
    return torch.where(mask[..., None], changes, 0)


def reverse_padded(features: Tensor, lengths: Tensor) -> Tensor:
    """Each row's first ``lengths[b]`` steps in reverse order (the clip played backwards); padding stays where it is."""
    total_length = features.shape[1]
    steps = torch.arange(total_length, device=features.device)
    lengths = lengths.to(features.device)[:, None]
    index = torch.where(steps[None, :] < lengths, lengths - 1 - steps[None, :], steps[None, :])
    return features.gather(1, index[..., None].expand_as(features))


def padding_mask(lengths: Tensor, total_length: int, device: torch.device | None = None) -> Tensor:
    """``[B,T]`` boolean mask, ``True`` at the first ``lengths[b]`` steps of each row."""
    steps = torch.arange(total_length, device=device)
    return steps[None, :] < lengths.to(device)[:, None]


def masked_mean(steps: Tensor, mask: Tensor) -> Tensor:
    """Mean over valid steps. Padded steps are excluded by selection, not by trusting them to be zero."""
    valid = mask[..., None]
    total = torch.where(valid, steps, 0).sum(dim=1)
    return total / valid.sum(dim=1).to(steps.dtype)


def masked_max(steps: Tensor, mask: Tensor) -> Tensor:
    """Per-feature maximum over valid steps (every clip has at least one)."""
    return steps.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)


class AdditiveAttention(nn.Module):
    """Attention pooling: ``score_t = v · tanh(W h_t + b)``, softmax over valid steps, weighted sum of steps.

    The additive form (Bahdanau et al. 2015, as used for pooling by Yang et al. 2016) scores each step with a small
    MLP, so even the non-recurrent baseline gets a non-linear judgement of which frames matter. Padded steps get a
    score of ``-inf`` before the softmax, so their weight is exactly zero.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.project = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, steps: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Pool ``steps [B,T,H]`` under ``mask [B,T]``; returns ``(pooled [B,H], weights [B,T])``."""
        scores = self.score(torch.tanh(self.project(steps))).squeeze(-1)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)
        pooled = torch.einsum("bt,bth->bh", weights, torch.where(mask[..., None], steps, 0))
        return pooled, weights


def _check_spec(spec: EncoderSpec) -> None:
    """Refuse settings that would fail later or silently mean something else."""
    cell, pooling, residual, nonlinearity = spec.cell, spec.pooling, spec.residual, spec.nonlinearity
    if cell not in get_args(Cell):
        raise ValueError(f"unknown cell {cell!r}; use one of {', '.join(get_args(Cell))}")
    if spec.inputs not in get_args(Inputs):
        raise ValueError(f"unknown inputs {spec.inputs!r}; use one of {', '.join(get_args(Inputs))}")
    if spec.kernel_size < 1 or spec.kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive (a window centred on its step), got {spec.kernel_size}")
    if pooling not in get_args(Pooling):
        raise ValueError(f"unknown pooling {pooling!r}; use one of {', '.join(get_args(Pooling))}")
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}; use tanh or relu")
    if nonlinearity != "tanh" and cell != "rnn":
        raise ValueError(f"nonlinearity={nonlinearity!r} applies only to cell='rnn', not {cell!r}")
    if cell in ("none", "conv") and pooling == "last":
        raise ValueError(f"cell={cell!r} has no recurrent state, so pooling='last' would read the last step alone; "
                         "use mean, max or attention")
    if pooling == "first" and cell != "none":
        raise ValueError(f"pooling='first' reads step 0 alone, a probe of where a clip starts; with cell={cell!r} it "
                         "would throw away what the cell read after it (use it with cell: none)")
    if pooling == "first" and spec.inputs in ("differences", "magnitudes"):
        raise ValueError(f"pooling='first' reads step 0 alone, whose change is zero by definition: with "
                         f"inputs={spec.inputs!r} every clip would get the same answer (use inputs: frames)")
    for name, value in (("hidden_size", spec.hidden_size), ("num_layers", spec.num_layers),
                        ("attention_dim", spec.attention_dim)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if spec.projection is not None and spec.projection < 1:
        raise ValueError(f"projection must be at least 1 (or None for no projection), got {spec.projection}")
    for name, rate in (("dropout", spec.dropout), ("input_dropout", spec.input_dropout)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {rate}")
    if residual and cell in ("none", "conv"):
        raise ValueError(f"residual=True adds a recurrent cell's output to the frame features; cell={cell!r} has none "
                         "(set residual: false)")
    if residual and pooling == "last":
        raise ValueError("residual=True changes the per-step outputs, not the final state; pool them with mean, max "
                         "or attention")


@dataclass(frozen=True)
class EncoderSpec:
    """How a :class:`TemporalEncoder` is built: every setting but the size of its input, which the features decide.

    One validated record, so the encoder is described once — in a config (``model.encoder``), in a checkpoint's
    hyperparameters (as a dict), to a model that receives it — instead of its arguments being listed again by each
    thing that builds one. The defaults are the classifier's.

    Args:
        cell: ``"rnn"``, ``"lstm"``, ``"gru"``, ``"conv"`` (a temporal convolution: ``num_layers`` ReLU layers of
            ``hidden_size`` channels over ``kernel_size`` steps; ``bidirectional`` is unused, it sees both sides), or
            ``"none"`` (steps are the projected inputs; ``hidden_size``, ``num_layers``, ``bidirectional`` and
            ``dropout`` are then unused, so switching cells needs no other change to a config). With
            ``inputs="frames"`` and mean pooling, ``"none"`` is the order-blind baseline.
        nonlinearity: ``"tanh"`` or ``"relu"`` for the plain RNN; other cells have fixed non-linearities, so
            ``"relu"`` with them is refused rather than silently ignored.
        inputs: ``"frames"`` (each step is the frame's features), ``"differences"`` (its change since the previous
            frame, ``x_t - x_{t-1}``, zero at step 0), ``"both"`` (the two concatenated) or ``"magnitudes"``
            (``|x_t - x_{t-1}|`` per feature: how much, not which way). Changes are taken after ``input_norm``, so
            their size is measured against a frame's own scale. A cell then sees motion directly instead of having to
            subtract two of its inputs itself; a clip played backwards has its changes negated and its magnitudes
            unchanged.
        kernel_size: ``cell="conv"`` only: steps each convolution reads (odd; centred, zero beyond the clip's ends).
        hidden_size: units per direction of each recurrent layer.
        num_layers: stacked recurrent layers.
        bidirectional: also read the clip backwards; doubles the output size.
        dropout: dropout between stacked recurrent layers (as in ``nn.LSTM``; no effect with one layer).
        input_dropout: dropout on the frame features, a regulariser for a classifier on fixed features.
        projection: size of a linear projection of the features before the cell, or ``None``. It factors the cell's
            large input matrix (``D`` is often 1280–2048) into a low-rank product, cutting parameters.
        input_norm: LayerNorm over each frame's features. A frozen CNN's features have an arbitrary, backbone-specific
            scale (post-ReLU averages, often far from unit variance) that would otherwise saturate tanh/sigmoid gates;
            LayerNorm works per step, so unlike BatchNorm it keeps a clip independent of its batch and its padding.
        pooling: ``"last"`` (final state: forward's last valid step, backward's first), ``"mean"`` or ``"max"`` over
            valid steps, ``"attention"`` (:class:`AdditiveAttention`), or ``"first"`` (step 0 alone; ``cell="none"``
            only: a probe of how much the first frame tells). ``cell="none"`` refuses ``"last"``: it would be the
            last frame alone, the same probe as ``"first"`` on the reversed clip.
        attention_dim: hidden size of the attention scorer (used only with ``pooling="attention"``).
        residual: per-step output = projected frame feature + ``residual_scale`` x cell output, with the scale a
            learned scalar that starts at 0 (ReZero, Bachlechner et al. 2021; residual recurrent layers as in Wu et
            al. 2016). Where the cell's output size (``hidden_size`` x directions) differs from the step size
            (``projection``, or the input size without one), a linear map brings it there (ResNet's projection
            shortcut); the output size is then the step size. The pooling must read the steps (mean, max or
            attention).
    """

    cell: Cell = "lstm"
    nonlinearity: Literal["tanh", "relu"] = "tanh"
    inputs: Inputs = "frames"
    kernel_size: int = 3
    hidden_size: int = 256
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0
    input_dropout: float = 0.1
    projection: int | None = 256
    input_norm: bool = True
    pooling: Pooling = "last"
    attention_dim: int = 128
    residual: bool = False

    def __post_init__(self) -> None:
        _check_spec(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (a checkpoint loads with ``weights_only=True``; a config prints them)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EncoderSpec:
        return cls(**values)

    def architecture(self) -> dict[str, Any]:
        """The settings that decide what the weights mean: all but the dropout rates, which only regularise training.

        Two encoders with the same architecture (and input) can exchange weights.
        """
        return {name: value for name, value in self.to_dict().items() if name not in ("dropout", "input_dropout")}


class TemporalEncoder(nn.Module):
    """Encode variable-length sequences of frame features ``[B,T,D]`` into clip vectors ``[B,H']``.

    Per step: optional LayerNorm, the frame and/or its change, input dropout, optional linear projection, then the
    recurrent (or convolutional) cell; then pooling.

    Args:
        input_dim: size ``D`` of a frame's feature vector.
        spec: everything else (:class:`EncoderSpec`).
    """

    def __init__(self, input_dim: int, spec: EncoderSpec = EncoderSpec()) -> None:
        super().__init__()
        if input_dim < 1:
            raise ValueError(f"input_dim must be at least 1, got {input_dim}")
        self.input_dim = input_dim
        self.spec = spec
        cell, inputs, projection, hidden_size = spec.cell, spec.inputs, spec.projection, spec.hidden_size
        num_layers, dropout = spec.num_layers, spec.dropout
        self.input_norm = nn.LayerNorm(input_dim) if spec.input_norm else nn.Identity()
        self.input_dropout = nn.Dropout(spec.input_dropout)
        shown_dim = 2 * input_dim if inputs == "both" else input_dim
        self.projection = nn.Linear(shown_dim, projection) if projection is not None else nn.Identity()
        step_dim = projection if projection is not None else shown_dim
        self.rnn = None
        self.conv = None
        if cell == "none":
            self._output_dim = step_dim
        elif cell == "conv":
            self.conv = TemporalConv(step_dim, hidden_size, num_layers, spec.kernel_size, dropout)
            self._output_dim = hidden_size
        else:
            self.rnn = _build_rnn(cell, step_dim, hidden_size, num_layers, spec.bidirectional, dropout,
                                  spec.nonlinearity)
            self._output_dim = hidden_size * (2 if spec.bidirectional else 1)
        #: How much of the cell's output is added to the frame features (``residual=True`` only; starts at 0).
        self.residual_scale = nn.Parameter(torch.zeros(())) if spec.residual else None
        self.residual_projection = nn.Identity()
        if spec.residual and self._output_dim != step_dim:
            self.residual_projection = nn.Linear(self._output_dim, step_dim, bias=False)
        if spec.residual:
            self._output_dim = step_dim
        self.attention = None
        if spec.pooling == "attention":
            self.attention = AdditiveAttention(self._output_dim, spec.attention_dim)

    @property
    def output_dim(self) -> int:
        """Size ``H'`` of ``pooled`` and of each step in ``steps``."""
        return self._output_dim

    def forward(self, features: Tensor, lengths: Tensor) -> EncoderOutput:
        """Encode ``features [B,T,D]`` whose row ``b`` is valid for its first ``lengths[b]`` steps.

        ``lengths`` is an integer tensor ``[B]`` with ``1 <= lengths <= T``, on the CPU (best: packing needs it
        there) or on the features' device. Padded steps may hold anything, even NaN; they are replaced by zeros on
        entry, so neither the output nor any gradient depends on them.
        """
        lengths = _checked_lengths(lengths, features, self.input_dim)
        mask = padding_mask(lengths, features.shape[1], features.device)
        inputs = self.projection(self.input_dropout(self._shown(features, mask)))
        if self.conv is not None:
            steps, last = self.conv(inputs, mask), None
        elif self.rnn is None:
            steps, last = torch.where(mask[..., None], inputs, 0), None
        else:
            steps, last = self._recur(inputs, lengths)
            if self.residual_scale is not None:
                context = self.residual_projection(steps)
                steps = torch.where(mask[..., None], inputs, 0) + self.residual_scale * context
        pooled, weights = self._pool(steps, mask, last)
        return EncoderOutput(pooled, steps, mask, weights)

    def _shown(self, features: Tensor, mask: Tensor) -> Tensor:
        """What each step shows the cell (before dropout and projection): frames, their changes, or both."""
        frames = self.input_norm(torch.where(mask[..., None], features, 0))
        if self.spec.inputs == "frames":
            return frames
        changes = frame_changes(frames, mask)
        if self.spec.inputs == "magnitudes":
            return changes.abs()
        return changes if self.spec.inputs == "differences" else torch.cat([frames, changes], dim=-1)

    def _recur(self, inputs: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Run the cell on packed sequences; return per-step outputs ``[B,T,H']`` and final states ``[B,H']``.

        Packing is what makes lengths exact: the cell never steps over padding, so a short clip's forward state stops
        at its last valid frame and its backward pass starts there (a padded batch would have the backward direction
        read the padding first). The final hidden state ``h_n`` of the top layer is therefore the right "last state"
        for both directions: forward's state after the last valid step and backward's state after step 0, each
        having read the whole valid clip. ``enforce_sorted=False`` lets PyTorch sort and unsort the batch for us;
        ``h_n`` comes back in the caller's order.
        """
        packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
        outputs, hidden = self.rnn(packed)
        steps, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.shape[1])
        h_n = hidden[0] if isinstance(hidden, tuple) else hidden
        directions = 2 if self.rnn.bidirectional else 1
        top = h_n.view(self.rnn.num_layers, directions, -1, self.rnn.hidden_size)[-1]
        last = top.transpose(0, 1).reshape(-1, directions * self.rnn.hidden_size)
        return steps, last

    def _pool(self, steps: Tensor, mask: Tensor, last: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """One vector per clip from its valid steps, plus attention weights when pooling by attention."""
        if self.spec.pooling == "last":
            return last, None
        if self.spec.pooling == "mean":
            return masked_mean(steps, mask), None
        if self.spec.pooling == "max":
            return masked_max(steps, mask), None
        if self.spec.pooling == "first":
            return steps[:, 0], None
        return self.attention(steps, mask)


class TemporalConv(nn.Module):
    """Stacked 1-D convolutions over time with ReLU: an order-aware encoder without recurrence.

    Each layer reads ``kernel_size`` steps centred on its own; steps beyond a clip's ends count as zero. Padded
    steps are zeroed before every layer, so a clip's output does not depend on what it is batched with.
    """

    def __init__(self, input_dim: int, channels: int, num_layers: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Conv1d(input_dim if layer == 0 else channels, channels, kernel_size, padding=kernel_size // 2)
            for layer in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, inputs: Tensor, mask: Tensor) -> Tensor:
        """``inputs [B,T,C]`` under ``mask [B,T]`` → ``[B,T,channels]``, zero on padding."""
        valid = mask[:, None, :]
        hidden = inputs.transpose(1, 2)
        for position, layer in enumerate(self.layers):
            if position > 0:
                hidden = self.dropout(hidden)
            hidden = torch.relu(layer(torch.where(valid, hidden, 0)))
        return torch.where(valid, hidden, 0).transpose(1, 2)


def _build_rnn(
    cell: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool, dropout: float,
    nonlinearity: str,
) -> nn.RNNBase:
    """The recurrent module, initialised as in :func:`_init_recurrent`."""
    options = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    rnn = _RNN_CLASSES[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                             bidirectional=bidirectional, dropout=dropout, **options)
    _init_recurrent(rnn, cell)
    return rnn


@torch.no_grad()
def _init_recurrent(rnn: nn.RNNBase, cell: str) -> None:
    """Orthogonal recurrent weights, zero biases, LSTM forget-gate and GRU update-gate bias 1.

    An orthogonal matrix preserves norms, so at initialisation repeated multiplication through time neither blows up
    nor shrinks the state and its gradients (Saxe et al. 2014); each gate's block is made orthogonal on its own. A
    forget-gate bias of 1 starts the LSTM remembering rather than forgetting, so gradients reach early frames from
    the first updates (Gers et al. 2000; Jozefowicz et al. 2015). The GRU's update gate ``z`` plays the same role
    (PyTorch: ``h' = (1 - z) * n + z * h``, gates ordered r, z, n), so it gets the same bias; at 0 it would keep only
    half of its state per step and its gradients would fade like a plain RNN's. PyTorch adds ``bias_ih`` and
    ``bias_hh``; the 1 is put in ``bias_ih`` only.
    """
    hidden = rnn.hidden_size
    for name, param in rnn.named_parameters():
        if name.startswith("weight_hh"):
            for block in param.chunk(_GATES[cell], dim=0):
                nn.init.orthogonal_(block)
        elif name.startswith("bias"):
            param.zero_()
            if cell in _REMEMBER_GATE and name.startswith("bias_ih"):
                param[hidden:2 * hidden] = 1.0


def _checked_lengths(lengths: Tensor, features: Tensor, input_dim: int) -> Tensor:
    """Validate a batch; return its lengths as a CPU int64 tensor (where packing needs them)."""
    if features.dim() != 3 or features.shape[-1] != input_dim:
        raise ValueError(f"features must be [B,T,{input_dim}], got {list(features.shape)}")
    batch, total_length = features.shape[:2]
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"lengths must be [B] = [{batch}], got {list(lengths.shape)}")
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be integers, got {lengths.dtype}")
    if batch == 0:
        raise ValueError("cannot encode an empty batch")
    lengths = lengths.to("cpu", torch.int64)
    if lengths.min() < 1 or lengths.max() > total_length:
        raise ValueError(f"lengths must lie in [1, T={total_length}], got min {int(lengths.min())}, "
                         f"max {int(lengths.max())}")
    return lengths
