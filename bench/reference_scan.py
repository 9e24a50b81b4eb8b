"""Bare JAX scan of IC encoder and generator, the CPU calibration point: prints one JSON line.

    python bench/reference_scan.py            # 50 neurons x 100 bins, batch 256

A bare JAX scan of just the IC encoder and generator (no controller), sharing no code with the
package and written plainly (``lax.scan`` of a GRU cell, ``jax.grad`` through it, Adam from
optax, one jitted step, JAX's default device). Defaults: 50 neurons x 100 bins, batch 256,
encoder 64, IC 64, generator 64, factors 20. Run it beside ``bench/train_throughput.py`` in the
same hour and compare the ratio of the two rates rather than raw rates: the host's speed
differs between days and drifts within an hour (docs/DESIGN.md, "A calibration point beside
every CPU series").

Output: ``trials_per_s`` (median of the timed calls), ``trials_per_s_fastest_call``,
``step_ms``, ``compile_s``, ``loss_finite``, ``device``, ``n_cpus``, ``config``.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--neurons", type=int, default=50)
    p.add_argument("--bins", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--enc-dim", type=int, default=64)
    p.add_argument("--ic-dim", type=int, default=64)
    p.add_argument("--gen-dim", type=int, default=64)
    p.add_argument("--fac-dim", type=int, default=20)
    p.add_argument("--calls", type=int, default=30, help="timed calls (one optimizer step each)")
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    N, T, B = args.neurons, args.bins, args.batch_size
    E, IC, G, F = args.enc_dim, args.ic_dim, args.gen_dim, args.fac_dim
    keys = iter(jax.random.split(jax.random.key(0), 16))

    def dense(n_in, n_out):
        return {
            "w": jax.random.normal(next(keys), (n_in, n_out)) / np.sqrt(n_in),
            "b": jnp.zeros(n_out),
        }

    def gru(n_in, h):
        return {
            "wx": jax.random.normal(next(keys), (n_in, 3 * h)) / np.sqrt(n_in),
            "wh": jax.random.normal(next(keys), (h, 3 * h)) / np.sqrt(h),
            "b": jnp.zeros(3 * h),
        }

    params = {
        "enc_fwd": gru(N, E),
        "enc_bwd": gru(N, E),
        "ic": dense(2 * E, 2 * IC),
        "g0": dense(IC, G),
        "gen": gru(1, G),
        "fac": dense(G, F),
        "out": dense(F, N),
    }

    def cell(p, h, x):
        H = h.shape[-1]
        gx, gh = x @ p["wx"] + p["b"], h @ p["wh"]
        r = jax.nn.sigmoid(gx[:, :H] + gh[:, :H])
        u = jax.nn.sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
        c = jnp.tanh(gx[:, 2 * H :] + r * gh[:, 2 * H :])
        return u * h + (1 - u) * c

    def run(p, x, h0):
        return jax.lax.scan(lambda h, x_t: (cell(p, h, x_t),) * 2, h0, x)

    def loss(params, counts, key):  # counts [T, B, N]
        z = jnp.zeros((B, E))
        hf, _ = run(params["enc_fwd"], counts, z)
        hb, _ = run(params["enc_bwd"], counts[::-1], z)
        post = jnp.concatenate([hf, hb], -1) @ params["ic"]["w"] + params["ic"]["b"]
        mean, logvar = post[:, :IC], post[:, IC:]
        g0 = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
        h0 = jnp.tanh(g0 @ params["g0"]["w"] + params["g0"]["b"])
        _, hs = run(params["gen"], jnp.zeros((T, B, 1)), h0)
        log_rates = (hs @ params["fac"]["w"]) @ params["out"]["w"] + params["out"]["b"]
        nll = jnp.sum(jnp.exp(log_rates) - counts * log_rates) / B
        kl = 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar) / B
        return nll + kl

    opt = optax.adam(1e-3)

    @jax.jit
    def step(params, opt_state, counts, key):
        value, grads = jax.value_and_grad(loss)(params, counts, key)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    counts = jax.random.poisson(next(keys), 0.2, (T, B, N)).astype(jnp.float32)
    opt_state = opt.init(params)
    key = next(keys)
    t0 = time.perf_counter()
    params, opt_state, value = step(params, opt_state, counts, key)
    value.block_until_ready()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(args.calls):
        t0 = time.perf_counter()
        params, opt_state, value = step(params, opt_state, counts, jax.random.fold_in(key, i))
        value.block_until_ready()
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    out = {
        "trials_per_s": round(B / median, 1),
        "trials_per_s_fastest_call": round(B / times[0], 1),
        "step_ms": round(1e3 * median, 2),
        "compile_s": round(compile_s, 2),
        "loss_finite": bool(np.isfinite(float(value))),
        "device": str(jax.devices()[0]),
        "n_cpus": os.cpu_count(),
        "config": vars(args),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
