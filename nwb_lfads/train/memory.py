"""The memory a fit will take, told before training, and the data streamed when it cannot fit.

Shape glossary: M trials, T bins, N units (padded), B batch size, P optimizer steps per
compiled call, D devices.

Per device the training step holds (bytes):

- the data it reads (:class:`~nwb_lfads.train.step.DeviceData`): the whole data set, spikes
  float32 [M, T, N] and per-trial masks, or when streamed one call's pool of P x B trials;
- the training state: parameters and the optimizer's moments (Adam: 2 per parameter) and
  copies the trainer keeps, the last good state (rollback after non-finite losses), the
  parameters' moving average and the best parameters: ``STATE_COPIES`` x the state;
- the compiled step's temporaries and outputs, as XLA reports them for the compiled program
  (``jitted.lower(...).compile().memory_analysis()``), else an analytic bound from the
  recurrences' activations kept for the backward pass.

The host holds the process as it is when the estimate is made (Python, JAX, the sessions read
and their arrays, the compiler: the resident set size then) plus, on CPU, every device's
share, and when streamed the pool being gathered on the host. Free memory is
the device's ``memory_stats()`` (``bytes_limit - bytes_in_use``) where the backend reports it,
else the host's available memory (``/proc/meminfo``).

With ``train.data_placement = auto``, a data set whose device total would pass
``FIT_FRACTION`` of the free memory is kept on the host: each compiled call then receives only
the trials its steps draw (:func:`draw_pool`), P shrunk so that the pool fits.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import numpy as np

STATE_COPIES = 4  # the state, the last good state, the moving average and the best parameters
FIT_FRACTION = 0.8  # of the free memory: allocator slack and fragmentation


class MemoryEstimate(NamedTuple):
    """Bytes a fit will hold (see the module docstring); ``line()`` is what ``fit`` prints."""

    platform: str
    n_devices: int
    data: int  # the data the step reads, per device
    state: int  # training state and the trainer's copies, per device
    step: int  # compiled step temporaries and outputs, per device
    step_source: str  # "XLA" (memory_analysis) or "estimate"
    free: int  # free memory per device (host available memory on CPU)
    host_now: int  # resident set size when estimated
    host: int  # expected peak of the process
    streamed: bool  # the data set stays on the host

    @property
    def device(self) -> int:
        return self.data + self.state + self.step

    def line(self) -> str:
        where = "host, streamed" if self.streamed else f"each of {self.n_devices} {self.platform}"
        return (
            f"memory: data {_mb(self.data)} ({where}), state {_mb(self.state)}, step "
            f"{_mb(self.step)} ({self.step_source}) = {_mb(self.device)} per device of "
            f"{_mb(self.free)} free; process peak ~{_mb(self.host)}"
        )


def _mb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def tree_bytes(tree) -> int:
    """Bytes of every array leaf of ``tree`` (numpy, JAX or ``ShapeDtypeStruct``)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return int(sum(int(np.prod(x.shape)) * _itemsize(x.dtype) for x in leaves))


def _itemsize(dtype) -> int:
    try:
        return np.dtype(dtype).itemsize
    except TypeError:  # a typed PRNG key: its raw data
        return 8


def host_available() -> int:
    """Bytes the host can still give (``MemAvailable``; all physical memory if unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def rss() -> int:
    """This process's resident set size, bytes."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def device_free(device) -> int | None:
    """Free bytes on ``device`` from its allocator's statistics; None when it has none (CPU)."""
    try:
        stats = device.memory_stats()
    except Exception:  # some backends raise instead of returning None
        return None
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def abstract(tree, sharding):
    """``tree`` as ``ShapeDtypeStruct`` leaves with ``sharding`` (None leaves stay None)."""
    return jax.tree_util.tree_map(
        lambda x: (
            jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype, sharding=sharding)
            if not isinstance(x, jax.Array)
            else jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
        ),
        tree,
    )


def compile_step(update, state, data, sharding):
    """``update`` compiled for ``state`` and ``data`` (arrays or abstract leaves) and its
    temporaries plus outputs in bytes (None when the backend does not report them)."""
    compiled = update.lower(abstract(state, sharding), abstract(data, sharding)).compile()
    try:
        stats = compiled.memory_analysis()
        used = int(stats.temp_size_in_bytes) + int(stats.output_size_in_bytes)
    except Exception:  # not every backend implements it
        used = None
    return compiled, used


def analytic_step(model_cfg, batch: int, n_bins: int, n_units: int, n_params: int) -> int:
    """Upper-bound guess of a step's temporaries (bytes) without XLA's figure: the float32
    activations the backward pass keeps for every bin (encoders, controller, generator,
    factors, rates and the gates of each GRU, x3), the batch's inputs, and two gradient-sized
    buffers."""
    m = model_cfg
    width = (
        4 * m.ic_enc_dim
        + 4 * m.ci_enc_dim
        + 4 * m.con_dim
        + 4 * m.gen_dim
        + 2 * m.co_dim
        + m.fac_dim
        + 3 * n_units
    )
    return int(4 * (3 * batch * n_bins * width + 2 * n_params))


def pool_steps(steps_per_call: int, batch: int, row_bytes: int, budget: int) -> int:
    """Steps per compiled call whose pool of ``steps * batch`` trials (``row_bytes`` each) fits
    in ``budget`` bytes; at least 1."""
    return int(max(1, min(steps_per_call, budget // max(1, batch * row_bytes))))


def draw_pool(rng: np.random.Generator, train_idx: np.ndarray, p, rows: int) -> np.ndarray:
    """Trial indices (int64 [rows]) for one streamed call: drawn with replacement from the
    training trials ``train_idx`` with probabilities ``p`` (None: uniform), as the on-device
    step draws its batches; the step then draws each batch uniformly from this pool."""
    return train_idx[rng.choice(train_idx.size, rows, replace=True, p=p)]


def take(host_data, rows: np.ndarray):
    """The :class:`~nwb_lfads.train.step.DeviceData` of trials ``rows`` (host arrays), with
    ``train_idx`` = every row and uniform sampling."""
    return host_data._replace(
        spikes=host_data.spikes[rows],
        session=host_data.session[rows],
        loss_mask=host_data.loss_mask[rows],
        sv_mask=None if host_data.sv_mask is None else host_data.sv_mask[rows],
        ext_inputs=None if host_data.ext_inputs is None else host_data.ext_inputs[rows],
        forward_mask=None if host_data.forward_mask is None else host_data.forward_mask[rows],
        train_idx=np.arange(rows.size, dtype=np.int32),
        train_p=None,
    )
