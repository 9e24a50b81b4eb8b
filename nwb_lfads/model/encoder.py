"""The two bidirectional encoders (initial condition and controller input) in one scan.

Shape glossary: B trials, T bins, I encoder inputs (read-in size or units), E ``ic_enc_dim``
(per direction), C ``ci_enc_dim`` (per direction), K cells (2 or 4), H = max(E, C).

The IC encoder (forward and backward GRU over the whole trial) summarises a trial into its
final states [B, 2E]; the controller-input (CI) encoder gives per-bin encodings [T, B, 2C]
(time-major, as the controller loop reads them),
the forward direction lagged by ``ci_lag`` bins and the backward direction led by it, so the
controller at bin t never sees the spikes of bin t itself (as in TF LFADS).

Speed: all K cells (both directions of both encoders) advance together in one loop
(:func:`.rnn.gru_layer`, with a hand-written backward pass): the backward cells read the
time-reversed sequence, and each step is one batched input matmul and one batched recurrent
matmul for all cells. Cells narrower than H are zero-padded (their padded state stays exactly
zero; see :func:`gru.pad_gates`).
"""

from __future__ import annotations

import haiku as hk
import jax.numpy as jnp

from . import noise
from .gru import GRUWeights, pad_gates
from .rnn import gru_layer


def lag_encodings(fwd, bwd, lag: int):
    """Shift forward encodings [T, B, C] (time-major) later by ``lag`` bins and backward ones
    earlier, zero-filling; returns [T, B, 2C]."""
    if lag > 0:
        T = fwd.shape[0]
        lag = min(lag, T)
        fwd = jnp.pad(fwd, ((lag, 0), (0, 0), (0, 0)))[:T]
        bwd = jnp.pad(bwd, ((0, lag), (0, 0), (0, 0)))[lag:]
    return jnp.concatenate([fwd, bwd], axis=-1)


class Encoders(hk.Module):
    """Bidirectional IC encoder and (when ``ci_enc_dim > 0``) CI encoder.

    Call with ``x`` float32 [B, T, I] (already dropped out) and, when training, two uint32
    dropout seeds (:mod:`.noise`); ``need_dx``: whether ``x`` depends on parameters (a
    read-in) so its gradient is needed. Returns ``(ic_enc [B, 2E], ci_enc [T, B, 2C]
    (time-major) or None)``, both with dropout applied when ``seeds`` is given.
    """

    def __init__(
        self,
        ic_enc_dim: int,
        ci_enc_dim: int,
        ci_lag: int,
        dropout_rate: float,
        name: str | None = "encoders",
    ):
        super().__init__(name=name)
        self.E, self.C, self.ci_lag, self.dropout_rate = (
            ic_enc_dim,
            ci_enc_dim,
            ci_lag,
            dropout_rate,
        )

    def __call__(self, x, seeds=None, need_dx: bool = False):
        B, T, I = x.shape
        E, C = self.E, self.C
        # cell order: forward cells first, then backward cells (same order); the backward
        # cells read the time-reversed stream
        sizes = [E, C, E, C] if C > 0 else [E, E]
        names = ["ic_fwd", "ci_fwd", "ic_bwd", "ci_bwd"] if C > 0 else ["ic_fwd", "ic_bwd"]
        H = max(sizes)
        K = len(sizes)
        weights = [GRUWeights(h, name=n)(I) for h, n in zip(sizes, names)]
        w_i = jnp.stack([pad_gates(w[0], H) for w in weights])  # [K, I, 3H]
        w_h = jnp.stack([pad_gates(w[1], H, rows=H) for w in weights])  # [K, H, 3H]
        b = jnp.stack([pad_gates(w[2], H) for w in weights])  # [K, 3H]
        x_t = jnp.transpose(x, (1, 0, 2))  # [T, B, I]
        streams = jnp.stack([x_t, jnp.flip(x_t, axis=0)], axis=1)  # [T, 2, B, I]
        hs = gru_layer(streams, w_i, w_h, b, need_dx)  # [T, K, B, H]
        ic_enc = jnp.concatenate([hs[-1, 0, :, :E], hs[-1, K // 2, :, :E]], axis=-1)
        ci_enc = None
        if K == 4:  # time-major, like the loops that produce and consume it (no transposes)
            ci_enc = lag_encodings(hs[:, 1, :, :C], jnp.flip(hs[:, 3, :, :C], axis=0), self.ci_lag)
        if seeds is not None and self.dropout_rate > 0:
            ic_enc = noise.dropout(seeds[0], self.dropout_rate, ic_enc)
            if ci_enc is not None:
                ci_enc = noise.dropout(seeds[1], self.dropout_rate, ci_enc, batch_axis=1)
        return ic_enc, ci_enc
