"""Known-dynamics reference for the chaotic-RNN benchmark: prints one JSON line.

    python bench/chaotic_oracle.py

How well can the true rates be recovered from one trial's spikes when the dynamics are
*known*? For every trial of ``bench/chaotic_rnn.py``'s data (seed 0) this script finds the
maximum a posteriori initial state x0 (50-d, prior N(0, 1), Poisson likelihood of the trial's
spikes under the benchmark's own rate function, the true weights), by Adam from several random
starts (keeping the best posterior per trial), and scores the resulting rates like the
benchmark (mean per-neuron R^2 against the true rates). Two optimistic references as well:
the MAP started at the true x0 (a local mode next to the truth), and the MAP of the 10 trials
of a condition pooled (a model told each trial's condition).

LFADS has to learn the dynamics as well, so these are ceilings, not targets: they say how
much of the benchmark's error is information missing from a single trial.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0, help="benchmark seed (as bench/chaotic_rnn.py)")
    p.add_argument("--restarts", type=int, default=4, help="random starts per trial")
    p.add_argument("--steps", type=int, default=300, help="Adam steps per start")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument(
        "--floor-hz",
        type=float,
        default=0.05,
        help="rates below this count as this in the likelihood (the min-max rates reach 0)",
    )
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from chaotic_rnn import r2_by_window, r2_per_neuron

    from nwb_lfads.synthetic import (
        benchmark_rates,
        chaotic_rnn_weights,
        generate_sessions,
        run_chaotic_rnn,
    )

    (s,) = generate_sessions("chaotic", sessions=1, seed=args.seed)
    # the latent system as generate_sessions draws it (first child of the seed sequence)
    lrng = np.random.default_rng(np.random.SeedSequence(args.seed).spawn(2)[0])
    weights = chaotic_rnn_weights(lrng)
    x0_true = lrng.standard_normal((s.condition_id.max() + 1, weights.shape[0]))
    if not np.allclose(
        benchmark_rates(run_chaotic_rnn(weights, x0_true, s.rates_hz.shape[1]))[s.condition_id],
        s.rates_hz,
    ):
        raise SystemExit("chaotic_oracle: could not reproduce the benchmark's latent system")
    cid, true = s.condition_id, s.rates_hz
    K, T, N = s.spikes.shape
    w = jnp.asarray(weights, jnp.float32)
    step_frac = s.bin_size / 0.025  # dt / tau of the benchmark
    floor = args.floor_hz * s.bin_size

    def rates_hz(x0):
        """x0 [M, N] -> benchmark rates [M, T, N] (Hz) of the trajectories from x0: the
        synthetic module's ``run_chaotic_rnn`` and ``benchmark_rates`` (NumPy, float64) in JAX,
        to differentiate; checked against the session's rates below."""

        def step(x, _):
            return x + step_frac * (-x + jnp.tanh(x) @ w.T), x

        _, xs = jax.lax.scan(step, x0, None, length=T)
        r = jnp.tanh(jnp.swapaxes(xs, 0, 1))
        lo, hi = r.min(axis=1, keepdims=True), r.max(axis=1, keepdims=True)
        return (r - lo) / jnp.maximum(hi - lo, 1e-12) * 30.0

    def neg_log_post(x0, counts, n_trials):
        """Per-row negative log posterior [M]; counts [M, T, N] summed over n_trials trials."""
        lam = jnp.maximum(rates_hz(x0) * s.bin_size, floor)
        return jnp.sum(n_trials * lam - counts * jnp.log(lam), axis=(1, 2)) + 0.5 * jnp.sum(
            x0**2, axis=1
        )

    def fit(x_init, counts, n_trials=1.0):
        opt = optax.adam(args.lr)

        @jax.jit
        def update(x, st):
            g = jax.grad(lambda x: jnp.sum(neg_log_post(x, counts, n_trials)))(x)
            u, st = opt.update(g, st)
            return optax.apply_updates(x, u), st

        x, st = x_init, opt.init(x_init)
        for _ in range(args.steps):
            x, st = update(x, st)
        return x, neg_log_post(x, counts, n_trials)

    def score(x0):
        pred = np.asarray(rates_hz(x0))
        return (round(r2_per_neuron(pred, true), 4), r2_by_window(pred, true, s.bin_size))

    t0 = time.perf_counter()
    if np.abs(np.asarray(rates_hz(jnp.asarray(x0_true, jnp.float32)))[cid] - true).max() > 0.05:
        raise SystemExit("chaotic_oracle: the JAX rate function departs from the benchmark's")
    spikes = jnp.asarray(s.spikes, jnp.float32)
    out = {
        "seed": args.seed,
        "restarts": args.restarts,
        "steps": args.steps,
        "floor_hz": args.floor_hz,
    }
    x, _ = fit(jnp.asarray(x0_true[cid], jnp.float32), spikes)
    out["r2_true_start"], out["r2_true_start_by_window"] = score(x)
    pooled = jnp.asarray(
        np.stack([s.spikes[cid == c].sum(axis=0) for c in range(len(x0_true))]), jnp.float32
    )
    reps = float(np.bincount(cid).mean())
    xc, _ = fit(jnp.asarray(x0_true, jnp.float32), pooled, reps)
    out["r2_condition_pooled"], _ = score(xc[cid])
    rng = np.random.default_rng(args.seed + 1)
    best_x, best = None, None
    for _ in range(args.restarts):
        x, nlp = fit(jnp.asarray(rng.standard_normal((K, N)), jnp.float32), spikes)
        if best is None:
            best_x, best = x, nlp
        else:
            better = nlp < best
            best_x, best = jnp.where(better[:, None], x, best_x), jnp.where(better, nlp, best)
    out["r2_random_starts"], out["r2_random_starts_by_window"] = score(best_x)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["device"] = str(jax.devices()[0])
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
