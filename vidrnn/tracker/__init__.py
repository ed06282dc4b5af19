"""Per-frame object tracking: template matching on frozen CNN maps, steered by a matching rule, read by a learned head.

One package, in the order a frame meets it: :mod:`~vidrnn.tracker.geometry` (where to look),
:mod:`~vidrnn.tracker.settings` (one validated record of how to search), :mod:`~vidrnn.tracker.matching` (template,
response, evidence, the matching rule), :mod:`~vidrnn.tracker.search` (the matching loop), :mod:`~vidrnn.tracker.head`
(the learned head), :mod:`~vidrnn.tracker.runtime` (a tracker over a clip), :mod:`~vidrnn.tracker.simulation`
(training data from the same loop) and :mod:`~vidrnn.tracker.evaluation` (scores on annotated sequences).
"""
