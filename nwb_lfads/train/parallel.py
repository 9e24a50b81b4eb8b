"""Data parallelism over the batch axis: the device mesh and shardings of one fit.

Shape glossary: B batch size (trials), D devices in the mesh (``train.devices`` per process
times the number of processes).

One :class:`Parallel` holds a :class:`jax.sharding.Mesh` with a single axis ``"batch"`` and two
:class:`~jax.sharding.NamedSharding` s: ``replicated`` (parameters, optimizer state, RNG, the
whole data set: every device holds a copy) and ``batch`` (the first axis of per-trial arrays
split into D equal slices). The training step gathers its batch from the replicated data set
and hands it to a ``shard_map`` over the ``batch`` axis: each device runs the forward and
backward pass of its slice, and one ``pmean`` averages the gradients
(:func:`nwb_lfads.train.step.sharded_value_and_grad`), so every device applies the same update
to its copy of the parameters. Validation passes only constrain their batches to ``batch``
(:func:`shard_batch`) and let XLA's SPMD partitioner split them. One device is a 1-device mesh
going through the same compiled code.

Several hosts: call ``jax.distributed.initialize()`` in every process before anything touches
JAX (``nwb-lfads fit --distributed`` does); the mesh then takes ``train.devices`` devices of
every process, ordered by process.
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..errors import ConfigError

try:  # jax >= 0.6 exports shard_map at the top level; older releases kept it experimental
    from jax import shard_map
except ImportError:  # pragma: no cover
    from jax.experimental.shard_map import shard_map

# The per-device bodies run lax.scan loops over replicated weights with per-device carries,
# which shard_map's replication typing rejects without annotations in every loop; the one
# output (after a pmean) is replicated by construction, so the check is switched off.
NO_REPLICATION_CHECK = (
    {"check_vma": False}
    if "check_vma" in inspect.signature(shard_map).parameters
    else {"check_rep": False}
)

BATCH_AXIS = "batch"
FORCE_CPU_DEVICES = "XLA_FLAGS=--xla_force_host_platform_device_count"


class Parallel(NamedTuple):
    """The mesh of one fit and its two shardings (see the module docstring)."""

    mesh: Mesh
    replicated: NamedSharding  # PartitionSpec(): a full copy on every device
    batch: NamedSharding  # PartitionSpec("batch"): axis 0 split over the devices

    @property
    def n_devices(self) -> int:
        return int(self.mesh.devices.size)

    @property
    def key(self) -> tuple:
        """Hashable identity of the mesh (for caches of compiled functions)."""
        return tuple((d.platform, d.id) for d in self.mesh.devices.flat)


def check_devices(n_devices: int, batch_size: int | None = None) -> None:
    """Raise :class:`ConfigError` unless ``n_devices`` local JAX devices exist (per process)
    and ``batch_size`` (trials per optimizer step, all processes together) divides by the
    mesh size."""
    if isinstance(n_devices, bool) or not isinstance(n_devices, int) or n_devices < 0:
        raise ConfigError(
            f"train.devices={n_devices!r}: expected a whole number of devices, 1 or more "
            f"(0 = automatic)."
        )
    if n_devices == 0:
        return
    local = jax.local_devices()
    if n_devices > len(local):
        kinds = ", ".join(sorted({d.platform for d in local}))
        raise ConfigError(
            f"train.devices={n_devices} (--devices): this process sees only {len(local)} JAX device(s) "
            f"({kinds}); use --devices {len(local)} or fewer. To try data parallelism on CPU, start with "
            f"{FORCE_CPU_DEVICES}={n_devices} set in the environment (it must be set before JAX starts)."
        )
    total = n_devices * jax.process_count()
    if batch_size is not None and batch_size % total:
        lower, upper = (batch_size // total) * total, (batch_size // total + 1) * total
        where = (
            f"{total} devices ({n_devices} per process x {jax.process_count()} processes)"
            if jax.process_count() > 1
            else f"train.devices={n_devices}"
        )
        raise ConfigError(
            f"train.batch_size={batch_size} does not divide by {where}: every device takes an equal slice "
            f"of each batch. Set train.batch_size to a multiple of {total} (e.g. --set train.batch_size="
            f"{lower or upper} or {upper}) or change train.devices."
        )


def mesh_devices(n_devices: int) -> list:
    """The first ``n_devices`` local devices of every process, ordered by process index."""
    if jax.process_count() == 1:
        return list(jax.local_devices()[:n_devices])
    by_process: dict[int, list] = {}
    for d in jax.devices():
        by_process.setdefault(d.process_index, []).append(d)
    return [
        d for p in sorted(by_process) for d in sorted(by_process[p], key=lambda d: d.id)[:n_devices]
    ]


def auto_devices(batch_size: int | None = None) -> int:
    """``train.devices = 0``: on the CPU backend, the largest count of its devices (one per core
    after :func:`~.host_devices.split_host`) that divides ``batch_size``; on GPU or TPU, 1
    (several accelerators are asked for explicitly, ``--devices N``). Single process only."""
    local = jax.local_devices()
    if jax.process_count() > 1 or local[0].platform != "cpu":
        return 1
    n = len(local)
    while n > 1 and batch_size is not None and batch_size % n:
        n -= 1
    return n


def make_parallel(n_devices: int = 1, batch_size: int | None = None) -> Parallel:
    """The :class:`Parallel` of ``n_devices`` devices per process (checked by :func:`check_devices`;
    0 = :func:`auto_devices`)."""
    check_devices(n_devices, batch_size)
    if n_devices == 0:
        n_devices = auto_devices(batch_size)
    mesh = Mesh(np.array(mesh_devices(n_devices)), (BATCH_AXIS,))
    return Parallel(
        mesh, NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    )


def put(tree, sharding: NamedSharding):
    """Place every array leaf of ``tree`` (numpy or JAX arrays; None leaves stay None) with
    ``sharding``. Across several processes each process must hold the same values."""
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def one(x):
        if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):  # typed PRNG key
            return jax.random.wrap_key_data(
                one(jax.random.key_data(x)), impl=jax.random.key_impl(x)
            )
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree_util.tree_map(one, tree)


def shard_batch(tree, sharding: NamedSharding):
    """Inside a jitted function: constrain the leading (trial) axis of every leaf of ``tree``
    (e.g. a :class:`~nwb_lfads.model.lfads.Batch`, arrays [B, ...]) to ``sharding``."""
    return jax.tree_util.tree_map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)
