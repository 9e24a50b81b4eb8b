"""Recovery of the true rates on the chaotic-RNN benchmark: prints one JSON line.

    python bench/chaotic_rnn.py --minutes 10

The official benchmark of ``nwb-lfads simulate`` (100 conditions x 10 trials, 50 neurons,
10 ms bins, 1 s trials) is fitted with the default configuration for ``--minutes`` of
training time (validation and R^2 evaluations are not counted). Every ``--every`` seconds the
posterior-mean rates of all trials (``--curve-samples`` samples) are compared with the true
rates; the final figure uses the best parameters and ``train.n_samples`` samples, also split by
time window (``r2_by_window``: 0-100, 100-300, 300-600, 600-1000 ms; each window's own R^2),
and on 100 new conditions x 10 trials of the same network that training never saw
(``r2_novel_conditions``).

R^2: per neuron, 1 - SSE/SST over all trials and bins (rates in Hz), averaged over neurons.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

WINDOWS_S = ((0.0, 0.1), (0.1, 0.3), (0.3, 0.6), (0.6, 1.0))  # seconds from trial start


def r2_per_neuron(pred, true) -> float:
    """Mean over neurons of 1 - SSE/SST over all trials and bins; arrays [K, T, N]."""
    import numpy as np

    pred = np.asarray(pred, float).reshape(-1, pred.shape[-1])
    true = np.asarray(true, float).reshape(-1, true.shape[-1])
    sse = np.sum((pred - true) ** 2, axis=0)
    sst = np.sum((true - true.mean(axis=0)) ** 2, axis=0)
    return float(np.mean(1.0 - sse / sst))


def r2_by_window(pred, true, bin_size: float) -> dict:
    """``r2_per_neuron`` within each window of ``WINDOWS_S`` that fits the trials; arrays
    [K, T, N], ``bin_size`` in seconds. Keys like ``"0-100ms"``."""
    out = {}
    for lo, hi in WINDOWS_S:
        a, b = round(lo / bin_size), round(hi / bin_size)
        if b <= true.shape[1]:
            out[f"{lo * 1e3:g}-{hi * 1e3:g}ms"] = round(
                r2_per_neuron(pred[:, a:b], true[:, a:b]), 4
            )
    return out


def benchmark_data(
    seed: int = 0,
    n_conditions: int = 100,
    trials_per_condition: int = 10,
    n_units=None,
    condition_seed=None,
):
    """(xarray session, true rates in Hz [K, T, N]) of the chaotic-RNN benchmark; with
    ``condition_seed``, new conditions (initial states, spikes) of the same network."""
    import numpy as np
    import xarray as xr

    from nwb_lfads.synthetic import generate_sessions

    (s,) = generate_sessions(
        "chaotic",
        sessions=1,
        seed=seed,
        n_conditions=n_conditions,
        trials_per_condition=trials_per_condition,
        n_units=n_units,
        condition_seed=condition_seed,
    )
    K, T, N = s.spikes.shape
    ds = xr.Dataset(
        {"spikes": (("trial", "time", "unit"), s.spikes.astype(np.int32))},
        coords={
            "trial": np.arange(K),
            "time": (np.arange(T) + 0.5) * s.bin_size,
            "unit": np.arange(N),
            "condition_id": ("trial", s.condition_id),
        },
        attrs={"session_id": "chaotic", "source": "chaotic.nwb", "bin_size": s.bin_size},
    )
    return ds, s.rates_hz


def fit_and_score(
    ds,
    true_hz,
    cfg,
    minutes: float,
    every: float,
    curve_samples: int,
    log=None,
    novel=None,
    also_samples=(),
) -> dict:
    """Train for ``minutes`` of training time; R^2 against ``true_hz`` over time.

    ``novel``: optional (session, true rates) of new conditions of the same network, never
    trained on; the best parameters' R^2 on them is ``r2_novel_conditions`` (what the model
    learned of the dynamics, as opposed to the benchmark's 100 trajectories it has seen).
    ``also_samples``: posterior sample counts at which the best parameters are also scored
    (``r2_by_samples``; the headline ``r2`` uses ``train.n_samples``)."""
    from nwb_lfads.data import prepare_data
    from nwb_lfads.infer import posterior_means
    from nwb_lfads.train.trainer import Trainer

    data = prepare_data([ds], cfg.data)
    bin_size = data.bin_size
    t0 = time.perf_counter()
    trainer = Trainer(data, cfg)
    setup_s = time.perf_counter() - t0
    curve, next_eval = [], every
    while (
        trainer.elapsed < 60 * minutes
        and not trainer.stop_reason
        and trainer.epoch < cfg.train.max_epochs
    ):
        row = trainer.train_epoch()
        if trainer.elapsed >= next_eval:
            next_eval += every
            rates = (
                posterior_means(trainer.averaged_params, cfg, data, n_samples=curve_samples)[0][
                    "rates"
                ]
                / bin_size
            )
            point = {
                "train_s": round(trainer.elapsed, 1),
                "epoch": trainer.epoch,
                "r2": round(r2_per_neuron(rates, true_hz), 4),
                "valid_recon": round(row["valid_recon"], 2),
                "valid_kl_ic": round(row["valid_kl_ic"], 2),
                "valid_kl_co": round(row["valid_kl_co"], 2),
                "lr": trainer.lr,
            }
            curve.append(point)
            if log:
                log(point)
    rates = posterior_means(trainer.best_params, cfg, data)[0]["rates"] / bin_size
    windows = r2_by_window(rates, true_hz, bin_size)
    # "last": the parameters after the last epoch (their moving average, train.ema_decay), not the best
    last = posterior_means(trainer.averaged_params, cfg, data)[0]["rates"] / bin_size
    pushed = posterior_means(trainer.best_params, cfg, data, push_mean=True)[0]["rates"] / bin_size
    extra = {}
    if also_samples:
        extra["r2_by_samples"] = {
            str(n): round(
                r2_per_neuron(
                    posterior_means(trainer.best_params, cfg, data, n_samples=n)[0]["rates"]
                    / bin_size,
                    true_hz,
                ),
                4,
            )
            for n in also_samples
        }
    if novel is not None:
        novel_data = prepare_data([novel[0]], cfg.data)
        novel_rates = posterior_means(trainer.best_params, cfg, novel_data)[0]["rates"] / bin_size
        extra.update(
            {
                "r2_novel_conditions": round(r2_per_neuron(novel_rates, novel[1]), 4),
                "r2_novel_by_window": r2_by_window(novel_rates, novel[1], bin_size),
            }
        )
    return {
        **extra,
        "r2": round(r2_per_neuron(rates, true_hz), 4),
        "r2_last_params": round(r2_per_neuron(last, true_hz), 4),
        "r2_push_mean": round(r2_per_neuron(pushed, true_hz), 4),
        "r2_by_window": windows,
        "train_s": round(trainer.elapsed, 1),
        "epochs": trainer.epoch,
        "steps": int(trainer.state.step),
        "best_epoch": trainer.best_epoch,
        "stop_reason": trainer.stop_reason,
        "setup_s": round(setup_s, 1),
        "curve": curve,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument(
        "--every", type=float, default=30.0, help="seconds of training between R^2 points"
    )
    p.add_argument("--curve-samples", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    p.add_argument(
        "--also-samples",
        type=int,
        nargs="*",
        default=[],
        help="posterior sample counts at which the best parameters are also scored",
    )
    args = p.parse_args(argv)

    from nwb_lfads.train.host_devices import split_host

    split_host()  # as the command line does: one CPU device per core (train.devices=0 uses them)
    from nwb_lfads.config import RunConfig

    cfg = RunConfig().with_overrides(args.set)
    ds, true_hz = benchmark_data(args.seed)
    out = fit_and_score(
        ds,
        true_hz,
        cfg,
        args.minutes,
        args.every,
        args.curve_samples,
        log=lambda pt: print(json.dumps(pt), file=sys.stderr, flush=True),
        novel=benchmark_data(args.seed, condition_seed=1),
        also_samples=args.also_samples,
    )
    import jax

    out.update(
        {
            "overrides": args.set,
            "n_cpus": os.cpu_count(),
            "devices": len(jax.devices()),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
    )
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
