"""nwb-lfads: LFADS latent dynamics on NWB sessions, from DANDI to an enriched NWB file.

The public API is imported lazily so that ``import nwb_lfads`` (and the CLI) stays fast and
does not pull in JAX until a model is needed::

    ds = nwb_lfads.read_session("session.nwb", bin_size=0.01, align_to="move_onset_time",
                                window=(-0.25, 0.45))

    from nwb_lfads.fit import fit          # the whole path: read, train, write, report
    result = fit(["session.nwb"], "runs/s1", overrides=["data.align_to=move_onset_time"])
"""

from __future__ import annotations

import importlib

from ._version import __version__
from .errors import NwbLfadsError

# public name -> module that defines it
_LAZY = {
    "read_session": "nwb_lfads.io.read",
    "read_sessions": "nwb_lfads.io.read",
    "merge_windows": "nwb_lfads.io.read",
    "write_results": "nwb_lfads.io.write",
    "simulate": "nwb_lfads.synthetic",
}
# Training and inference live in submodules named after them (``from nwb_lfads.fit import fit``,
# ``from nwb_lfads.infer import infer``): a package attribute ``fit`` would be replaced by the
# submodule of the same name as soon as it is imported.

__all__ = ["__version__", "NwbLfadsError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nwb_lfads' has no attribute {name!r}")
