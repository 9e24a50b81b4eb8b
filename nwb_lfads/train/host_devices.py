"""One XLA device per CPU core, so that a fit on CPU uses every core through data parallelism.

XLA's CPU backend runs the many small matmuls of an LFADS step with its own thread pool, and
on a few cores that pool keeps them less busy than independent work would, so the host is
split into devices that each take a slice of every batch (:mod:`.parallel`; ``train.devices``
0 = automatic; evidence in docs/DESIGN.md, "On CPU, one XLA device per core").

The split must be requested before JAX starts its CPU backend (``XLA_FLAGS``), so the command
line calls :func:`split_host` before any command imports JAX; a Python user calls it first
thing, or sets ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` in the environment. It
never imports JAX and leaves an explicit setting alone. GPU and TPU machines are unaffected:
their accelerator stays JAX's default backend.
"""

from __future__ import annotations

import os
import sys

FLAG = "--xla_force_host_platform_device_count"
MAX_SPLIT = 8


def default_split() -> int:
    """CPU cores this process may use (its affinity set when known), at most :data:`MAX_SPLIT`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_SPLIT))


def split_host(n: int | None = None) -> int | None:
    """Ask XLA to present the CPU as ``n`` devices (default :func:`default_split`).

    Returns:
        the device count now requested, or None when JAX is already imported (too late: its
        backend may be running) or ``XLA_FLAGS`` already names a count (the user's choice wins).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if FLAG in flags or "jax" in sys.modules:
        return None
    n = default_split() if n is None else int(n)
    if n > 1:
        os.environ["XLA_FLAGS"] = f"{flags} {FLAG}={n}".strip()
    return n
