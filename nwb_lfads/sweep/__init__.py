"""AutoLFADS: population-based training of LFADS on Ray Tune (``nwb-lfads sweep``).

- :mod:`~nwb_lfads.sweep.space`: the searched hyperparameters, the PBT schedule, YAML overrides;
- :mod:`~nwb_lfads.sweep.cluster`: importing Ray, joining a cluster or starting a local one;
- :mod:`~nwb_lfads.sweep.member`: the Ray Tune trainable around the Trainer;
- :mod:`~nwb_lfads.sweep.population`: the population log, lineages, exploits, figures;
- :mod:`~nwb_lfads.sweep.outputs`: scoring members, the leaderboard and ``best/``;
- :mod:`~nwb_lfads.sweep.run`: :func:`sweep`, the driver.

Ray is imported only when a sweep runs (``pip install "nwb-lfads[sweep]"``).
"""

from .run import SweepResult, sweep
from .space import (
    DEFAULT_HYPERPARAMETERS,
    Hyperparameter,
    PBTSchedule,
    SearchSpace,
    default_search_space,
    load_search_space,
    search_space_from_dict,
)

__all__ = [
    "sweep",
    "SweepResult",
    "SearchSpace",
    "Hyperparameter",
    "PBTSchedule",
    "DEFAULT_HYPERPARAMETERS",
    "default_search_space",
    "load_search_space",
    "search_space_from_dict",
]
