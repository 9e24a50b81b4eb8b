"""Counter-based random numbers for dropout masks and posterior samples.

Why not ``jax.random`` for these: on CPU, threefry costs tens of nanoseconds per number and
each call site adds a second or more of XLA compile time, while one training step of the
reference model needs ~6 million dropout draws. Here a number is a hash of its position and
a 32-bit seed (two rounds of the MurmurHash3 finaliser, ``fmix32``): one fused integer kernel
of about ten operations per element, and statistically ample for dropout masks and Gaussian
noise. Seeds come from a ``jax.random`` key (:func:`seeds_from_key`), so the stream is still
fully determined by the training RNG.

Shape glossary: B trials, T bins, N units; ``shape`` any array shape. Seeds are uint32
scalars; bits and positions uint32; uniforms, normals and dropout scales float32.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

_GOLDEN = np.uint32(0x9E3779B9)
_SHARD_AXIS: list[str] = []  # set while tracing one device's slice of a batch (trace time only)


@contextlib.contextmanager
def batch_shard(axis_name: str):
    """While tracing the per-device body of a ``shard_map`` whose arrays [B/D, ...] are the
    D-th parts of a batch [B, ...] split along ``axis_name``: number every random draw by its
    position in the whole batch (device i adds i x its slice's size), so each device draws
    exactly the numbers that one device would draw for its trials. Every draw names its trial
    axis (``batch_axis``, 0 unless said otherwise), which is what makes the offsets right."""
    _SHARD_AXIS.append(axis_name)
    try:
        yield
    finally:
        _SHARD_AXIS.pop()


def fmix32(h):
    """MurmurHash3 finaliser on uint32 arrays (a bijection with full avalanche)."""
    h = h ^ (h >> 16)
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def seeds_from_key(key, n: int):
    """``n`` distinct-looking uint32 seeds [n] from a typed JAX key (no threefry kernel)."""
    data = jax.random.key_data(key).reshape(-1).astype(jnp.uint32)
    base = fmix32(data[0] ^ fmix32(data[-1] + _GOLDEN))
    return fmix32(base + (jnp.arange(n, dtype=jnp.uint32) + np.uint32(1)) * _GOLDEN)


def _positions(shape, batch_axis: int):
    """uint32 [shape]: each element's row-major position in the whole batch. Outside
    :func:`batch_shard` that is its position in ``shape``; inside, ``shape`` is device d's
    slice along ``batch_axis`` of a batch D times larger, and the positions are the ones its
    elements have in that batch."""
    n = int(np.prod(shape)) if len(shape) else 1
    if not (_SHARD_AXIS and len(shape)):
        return jax.lax.iota(jnp.uint32, n).reshape(shape)
    axis = _SHARD_AXIS[-1]
    outer = int(np.prod(shape[:batch_axis]))
    inner = n // outer  # batch axis and the axes after it
    n_dev = jax.lax.psum(np.uint32(1), axis)
    dev = jax.lax.axis_index(axis).astype(jnp.uint32)
    o = jax.lax.broadcasted_iota(jnp.uint32, (outer, inner), 0)
    i = jax.lax.broadcasted_iota(jnp.uint32, (outer, inner), 1)
    return ((o * n_dev + dev) * np.uint32(inner) + i).reshape(shape)


def _hash(idx, seed):
    """uint32 bits of positions ``idx`` (uint32, any shape) under ``seed``."""
    return fmix32(fmix32(idx * _GOLDEN ^ seed) + seed)


def random_bits(seed, shape, batch_axis: int = 0):
    """uint32 hash bits of ``shape`` for a uint32 scalar ``seed``, a pure function of each
    element's position (in the whole batch inside :func:`batch_shard`; ``batch_axis`` names
    the trial axis)."""
    return _hash(_positions(tuple(shape), batch_axis), seed)


def uniform(seed, shape, batch_axis: int = 0):
    """float32 uniforms in (0, 1) of ``shape`` (24-bit resolution, never exactly 0 or 1)."""
    bits = random_bits(seed, shape, batch_axis) >> np.uint32(8)
    return (bits.astype(jnp.float32) + 0.5) * np.float32(1.0 / (1 << 24))


def normal(seed, shape, batch_axis: int = 0):
    """Standard normal float32 samples of ``shape`` (Box-Muller on two hash streams)."""
    u1 = uniform(seed, shape, batch_axis)
    u2 = uniform(fmix32(seed ^ np.uint32(0x5BD1E995)), shape, batch_axis)
    return jnp.sqrt(-2.0 * jnp.log(u1)) * jnp.cos(np.float32(2.0 * np.pi) * u2)


def keep_mask(seed, rate: float, shape, batch_axis: int = 0):
    """bool mask of ``shape``, True with probability ``1 - rate`` (the same mask as
    ``random_bits(seed, shape, batch_axis) >= rate * 2**32``).

    The mask is drawn row by row (first axis) inside a loop, so XLA stores it once and every
    user reads the stored mask. Why: XLA fuses an element-wise producer into each of its
    consumers, so a mask used by the forward and the backward pass was hashed twice, and the
    backward copy landed in the kernel that assembles the encoders' gradient from several
    pieces, which XLA does not vectorise (docs/DESIGN.md, "The step's CPU kernels"). A loop's
    result cannot be fused into its users (an optimisation barrier would not do: XLA drops it
    before fusion; a loop that only copies is removed by JAX)."""
    threshold = np.uint32(min(int(rate * 2.0**32), 2**32 - 1))
    shape = tuple(shape)
    if len(shape) < 2:
        return random_bits(seed, shape, batch_axis) >= threshold
    # position of element (t, rest) = t * row_stride + base[rest] (see _positions)
    if batch_axis == 0:
        row_stride = int(np.prod(shape[1:]))
        base = _positions(shape, 0)[0]
    else:
        base = _positions(shape[1:], batch_axis - 1)
        n_dev = jax.lax.psum(np.uint32(1), _SHARD_AXIS[-1]) if _SHARD_AXIS else np.uint32(1)
        row_stride = n_dev * np.uint32(int(np.prod(shape[1:])))

    def row(_, t):
        return None, _hash(t * row_stride + base, seed) >= threshold

    return jax.lax.scan(row, None, jnp.arange(shape[0], dtype=jnp.uint32))[1]


def jitter_in_time(seed, width: int, x):
    """Temporal spike jitter (TF LFADS's ``temporal_spike_jitter_width``), a data augmentation.

    Each (trial, bin, unit) count of ``x`` moves as a whole by an offset drawn uniformly from
    ``-width .. width`` bins; a move that would leave the trial stays in its bin, so every
    trial keeps its spike count. At the low counts of 10 ms bins (mostly 0 or 1) moving a bin's
    count is moving its spikes.

    Args:
        seed: uint32 scalar.
        width: largest shift in bins (0 = no jitter).
        x: counts, float32 [B, T, N].

    Returns:
        jittered counts, float32 [B, T, N], the same total per trial and unit.
    """
    if width <= 0:
        return x
    T = x.shape[1]
    n = 2 * width + 1
    shift = (random_bits(seed, x.shape) % np.uint32(n)).astype(jnp.int32) - width  # [B, T, N]
    t = jax.lax.broadcasted_iota(jnp.int32, x.shape, 1)
    shift = jnp.where((t + shift < 0) | (t + shift >= T), 0, shift)
    out = jnp.where(shift == 0, x, 0.0)
    for k in range(1, width + 1):
        ahead = jnp.where(shift == k, x, 0.0)  # moves from bin t to t + k
        behind = jnp.where(shift == -k, x, 0.0)  # moves from bin t to t - k
        out = out + jnp.pad(ahead[:, : T - k], ((0, 0), (k, 0), (0, 0)))
        out = out + jnp.pad(behind[:, k:], ((0, 0), (0, k), (0, 0)))
    return out


def dropout(seed, rate: float, x, batch_axis: int = 0):
    """Inverted dropout of ``x`` (float32, any shape; trial axis ``batch_axis``): zero with
    probability ``rate``, scale the rest by 1/(1-rate); returns the shape of ``x``."""
    if rate <= 0:
        return x
    return jnp.where(keep_mask(seed, rate, x.shape, batch_axis), x / (1.0 - rate), 0.0)


def dropout_scale(seed, rate: float, shape, batch_axis: int = 0):
    """float32 [shape] of 0 or 1/(1-rate): a dropout mask to multiply with."""
    return jnp.where(
        keep_mask(seed, rate, shape, batch_axis), np.float32(1.0 / (1.0 - rate)), np.float32(0.0)
    )


def normal_init(stddev: float, truncate: float = 2.0):
    """A Haiku initializer: normal(0, stddev) clipped at ``truncate`` standard deviations,
    drawn with the hash generator (one tiny key split per parameter instead of a threefry
    kernel each: much faster to compile)."""
    import haiku as hk

    def init(shape, dtype):
        seed = seeds_from_key(hk.next_rng_key(), 1)[0]
        return (jnp.clip(normal(seed, tuple(shape)), -truncate, truncate) * stddev).astype(dtype)

    return init


def fan_in_init(truncate: float = 2.0):
    """:func:`normal_init` with stddev 1/sqrt(fan_in) (fan_in = first dimension, or the
    product of all but the last)."""

    def init(shape, dtype):
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else int(shape[0])
        return normal_init(1.0 / np.sqrt(max(fan_in, 1)), truncate)(shape, dtype)

    return init
