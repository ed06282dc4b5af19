"""The learned part of the tracker: a recurrent head that reads each search's evidence and reports a box.

:class:`RecurrentBoxHead` reads, frame after frame, the :class:`~vidrnn.tracker.matching.Evidence` of each search and
regresses the box as a correction of the matching-only answer. What a recurrent state can add that a single frame
cannot: motion continuity (a second peak far from where the target was heading is a distractor), memory through
occlusion (when the response collapses, keep the course), and a size that changes smoothly. ``cell="none"`` gives the
same head without recurrence (a per-frame MLP), so a table can separate "learned" from "recurrent".
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from vidrnn.tracker.matching import LEVEL_FREE_DIM, RESPONSE_GRID, Evidence, MatchingRule

__all__ = ["MAX_SCALE_STEP", "ON_TARGET_IOU", "RecurrentBoxHead", "TrackerCell"]

TrackerCell = Literal["rnn", "lstm", "gru", "none"]

#: Largest log-size correction of the matching box's width or height. Generated targets change by about 0.005 per
#: frame on average and by up to ~0.06 where the frame's edge cuts their box. The bound dates from heads whose box
#: placed the next search, where an unbounded size compounded its errors (a box grew 14-fold in 40 frames on a real
#: sequence); now the matching box steers, and the bound keeps a head that meets unfamiliar evidence near it.
MAX_SCALE_STEP = 0.1
#: The matching box counts as on the target (the confidence's training label) at this IoU with the true box or more.
ON_TARGET_IOU = 0.3


class RecurrentBoxHead(nn.Module):
    """Per-frame match evidence ``[B,T,EVIDENCE_DIM]`` → boxes ``[B,T,4]`` (crop-normalised ``x, y, w, h``).

    Input per frame: the evidence's summary read through :meth:`Evidence.level_free` and, with ``response_map``, the
    coarse response map as heights (:meth:`Evidence.response_heights`: where every candidate stands, for telling the
    target from look-alikes by how they moved) and, with ``levels``, the similarity levels the summary leaves out
    (:meth:`Evidence.levels`: a drop against their own history in the sequence says the target may be lost). The
    output is a correction of the
    matching-only answer (:meth:`matching_boxes`, the ``rule`` the tracker follows) as a centre offset and a
    log-scale change, starting at exactly that answer (the last layer starts at zero), so training begins from the
    matching-only tracker and can only learn what improves on it. The learned size change is at most
    :data:`MAX_SCALE_STEP` (log) per side, relative to the matching box.

    While the search is *held* (see :class:`MatchingRule`) the matching-only answer is the box the search was cut
    for, and the head's correction is where it believes the hidden target has gone since: the one answer a single
    frame cannot give and a recurrent state, which saw the target move before it vanished, can.

    ``confidence`` adds a second answer per frame: the logit that the matching box is still on the target (trained
    on whether it overlaps the true box by at least :data:`ON_TARGET_IOU`). A tracker may widen its next search when
    that belief falls (:class:`~vidrnn.tracker.runtime.Tracker`'s ``redetect_below``) — the head's memory then steers
    the search, where a loss shows as a change against the sequence's own history.

    ``bidirectional`` reads the whole clip in both directions (offline analysis); the unidirectional head runs online,
    one frame at a time, carrying its ``state`` (:meth:`forward` with ``T = 1``).
    """

    def __init__(
        self,
        cell: TrackerCell = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        rule: MatchingRule = MatchingRule(),
        response_map: bool = False,
        levels: bool = False,
        confidence: bool = False,
    ) -> None:
        super().__init__()
        if cell not in ("rnn", "lstm", "gru", "none"):
            raise ValueError(f"cell must be rnn, lstm, gru or none, got {cell!r}")
        if cell == "none" and bidirectional:
            raise ValueError("cell='none' reads frames one by one: bidirectional needs a recurrent cell")
        self.cell, self.bidirectional, self.rule = cell, bidirectional, rule
        self.response_map, self.levels = response_map, levels
        inputs = LEVEL_FREE_DIM + (RESPONSE_GRID**2 if response_map else 0) + (4 if levels else 0)
        self.embed = nn.Sequential(nn.Linear(inputs, hidden_size), nn.ReLU())
        if cell == "none":
            self.rnn = None
            self.temporal = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.ReLU())
            out_dim = hidden_size
        else:
            self.rnn = getattr(nn, cell.upper())(
                hidden_size, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=bidirectional,
                dropout=dropout if num_layers > 1 else 0.0,
            )
            out_dim = hidden_size * (2 if bidirectional else 1)
        self.out = nn.Linear(out_dim, 4)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.confidence = nn.Linear(out_dim, 1) if confidence else None

    def _matching(self, evidence: Evidence) -> tuple[Tensor, Tensor]:
        """Centre ``(u, v)`` and size ``(w, h)`` of the matching-only answer, crop-normalised."""
        centre, factor, _ = self.rule.answer(evidence)
        return centre, evidence.searched_size * factor[..., None]

    def matching_boxes(self, evidence: Tensor) -> Tensor:
        """The matching-only answer for the same evidence (what the tracker does without a head)."""
        centre, size = self._matching(Evidence(evidence))
        return torch.cat([centre - size / 2, size], dim=-1)

    def forward(self, evidence: Tensor, state: object = None) -> tuple[Tensor, object]:
        """Boxes ``[B,T,4]`` for evidence ``[B,T,EVIDENCE_DIM]``; returns the recurrent state after the last step
        too."""
        boxes, _, state = self.read(evidence, state)
        return boxes, state

    def read(self, evidence: Tensor, state: object = None) -> tuple[Tensor, Tensor | None, object]:
        """Boxes ``[B,T,4]``, the confidence logits ``[B,T]`` that the matching box is still on the target (``None``
        without ``confidence``) and the recurrent state after the last step."""
        evidence = Evidence(evidence)
        inputs = evidence.level_free()
        if self.response_map:
            inputs = torch.cat([inputs, evidence.response_heights()], dim=-1)
        if self.levels:
            inputs = torch.cat([inputs, evidence.levels()], dim=-1)
        hidden = self.embed(inputs)
        if self.rnn is None:
            hidden, state = self.temporal(hidden), None
        else:
            hidden, state = self.rnn(hidden, state)
        correction = self.out(hidden)
        centre, size = self._matching(evidence)
        centre = centre + correction[..., :2] * size
        size = size * (MAX_SCALE_STEP * torch.tanh(correction[..., 2:])).exp()
        logits = self.confidence(hidden)[..., 0] if self.confidence is not None else None
        return torch.cat([centre - size / 2, size], dim=-1), logits, state
