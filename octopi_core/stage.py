"""Where a prediction is: the stages a job reports while it runs (torch-free, for the gateway too)."""

from enum import Enum

__all__ = ["Stage"]


class Stage(str, Enum):
    """Where a prediction is.

    - ``fetching``: reading and normalising the tomogram
    - ``inferring``: sliding-window segmentation; progress is the fraction of windows done
    - ``localizing``: turning segmentation into picks
    """

    FETCHING = "fetching"
    INFERRING = "inferring"
    LOCALIZING = "localizing"
