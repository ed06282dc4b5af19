"""What a model's labels mean: a dataset's classes, or a temporal-order task (see :mod:`vidrnn.data.order`).

Shared by the data layer, which makes the labels, and the models, which may rely on their meaning (the classifier's
antisymmetric arrow-of-time score needs to know which class is "forwards").
"""

from __future__ import annotations

from typing import Literal

__all__ = ["LABEL_SEPARATOR", "ORDER_CLASSES", "Objective"]

#: What a data module's labels are: the dataset's classes, or a temporal-order task needing no annotation.
Objective = Literal["classes", "arrow_of_time", "order_verification"]

#: What joins a row's labels in one text cell (``vidrnn classify``'s CSV ``topk_labels``), so no class name may hold
#: it: "sit; stand;walk" could not be split back into the labels it joined.
LABEL_SEPARATOR = ";"

#: Class names of the order tasks; index 1 is the clip as recorded, index 0 its reversed or shuffled copy.
ORDER_CLASSES: dict[str, tuple[str, str]] = {
    "arrow_of_time": ("backwards", "forwards"),
    "order_verification": ("shuffled", "in order"),
}
