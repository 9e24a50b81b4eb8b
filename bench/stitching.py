"""Multi-session stitching, recovery and throughput: prints one JSON line.

    python bench/stitching.py              # about 10 minutes on 2 CPU cores
    python bench/stitching.py --skip-throughput --units 40 55 70 --trials 400 400 20

**Recovery.** Sessions from one latent chaotic RNN (:func:`nwb_lfads.synthetic.generate_sessions`,
each session with its own units and log-linear read-out); the last session is the small one,
with one trial per condition by default (``--trials 400 400 20``, 20 conditions): with two or
more trials per condition of 10-20 conditions and 30+ units, a session alone already learns the
dynamics as well as the joint model, and stitching has nothing to add. Both fits use the same
model and settings, including ``kl_ic_scale = KL_IC_SCALE`` (0.5): at the default 1.0 the tiny
benchmark model sometimes collapses its initial-condition posterior (docs/DESIGN.md,
"Stitching: random read-ins by default").
The joint (stitched) fit and the small session's fit alone get the SAME BUDGET OF OPTIMIZER
STEPS (``--steps``, same batch size cap, same model). Every schedule counted in epochs (KL and
L2 ramps, learning-rate patience) is converted so that it spans the same number of steps in
both fits; early stopping is off; the parameters scored are the trainer's best by validation
loss. Score: per-neuron R^2 (:func:`nwb_lfads.metrics.r2_per_neuron`, over all trials and bins,
averaged over units) of posterior-mean rates (Hz) against the true rates (Hz), for every trial
of the session (training and validation). Output ``recovery``: ``small_joint_r2``,
``small_alone_r2``, ``margin`` (joint minus alone), ``large_joint_r2`` (one per large session),
each fit's ``joint`` / ``alone`` details, and ``accept``: ``margin >= 0.10``.

**Throughput.** Trials per second of the training step measured with the Trainer: the
wall time of ``train_epoch`` (optimizer steps plus the validation pass) for epochs 2.., the
first (compilation) excluded, trials = training trials per epoch. Five sessions of
``--tp-units`` (default 40..120) vs one session with the same total trials and the largest unit
count. Output ``throughput``: ``multi`` and ``single`` (``trials_per_s``, ``epoch_s``,
``first_epoch_s``, ...), ``ratio_single_over_multi``, and ``accept``: that ratio <= 1.3.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

KL_IC_SCALE = 0.5  # both fits; see the module docstring
MODEL = dict(
    gen_dim=64,
    ic_enc_dim=32,
    ci_enc_dim=32,
    ic_dim=32,
    con_dim=0,
    co_dim=0,
    fac_dim=12,
    dropout_rate=0.05,
)


def to_dataset(session, name: str):
    """xarray Dataset (trial, time, unit) of a :class:`SyntheticSession` with its condition ids."""
    import numpy as np
    import xarray as xr

    K, T, N = session.spikes.shape
    return xr.Dataset(
        {"spikes": (("trial", "time", "unit"), session.spikes.astype(np.int32))},
        coords={
            "trial": np.arange(K),
            "time": (np.arange(T) + 0.5) * session.bin_size,
            "unit": np.arange(N),
            "condition_id": ("trial", session.condition_id),
        },
        attrs={"session_id": name, "source": f"{name}.nwb", "bin_size": session.bin_size},
    )


def make_sessions(units, trials, n_conditions: int, seed: int):
    """Synthetic sessions with ``units[s]`` units and ``trials[s]`` trials (multiples of
    ``n_conditions``) from one latent system; returns (SyntheticSession list, Dataset list)."""
    from nwb_lfads.synthetic import generate_sessions

    reps = []
    for k in trials:
        if k % n_conditions:
            raise SystemExit(f"--trials {k} is not a multiple of --conditions {n_conditions}")
        reps.append(k // n_conditions)
    sess = generate_sessions(
        "chaotic",
        sessions=len(units),
        seed=seed,
        n_conditions=n_conditions,
        trials_per_condition=reps,
        n_units=list(units),
    )
    return sess, [to_dataset(s, f"sim{i}") for i, s in enumerate(sess)]


def config(
    steps_per_epoch: int,
    steps: int,
    model: dict,
    batch_size: int,
    seed: int,
    ramp_frac: float = 0.3,
):
    """RunConfig whose epoch-counted schedules span fixed fractions of ``steps`` optimizer steps."""
    from nwb_lfads.config import RunConfig

    def epochs(n_steps):
        return max(1, round(n_steps / steps_per_epoch))

    ramp = epochs(ramp_frac * steps)
    return RunConfig().replace(
        model=model,
        train=dict(
            batch_size=batch_size,
            kl_increase_epochs=ramp,
            l2_increase_epochs=ramp,
            lr_patience=epochs(0.1 * steps),
            early_stop_patience=10**6,
            max_epochs=10**6,
            n_samples=20,
            seed=seed,
            kl_ic_scale=KL_IC_SCALE,
        ),
    )


def fit_r2(datasets, true_hz, steps: int, model: dict, batch_size: int, seed: int) -> dict:
    """Train on ``datasets`` for ``steps`` optimizer steps (whole epochs, at least ``steps``);
    R^2 per session of the best parameters' posterior-mean rates against ``true_hz``
    (list of float64 Hz arrays [K_s, T, N_s], one per dataset)."""
    import math

    from nwb_lfads.config import DataConfig
    from nwb_lfads.data import prepare_data
    from nwb_lfads.infer import posterior_means
    from nwb_lfads.metrics import r2_per_neuron
    from nwb_lfads.train.trainer import Trainer

    data = prepare_data(datasets, DataConfig())
    n_train = int(data.train.sum())
    spe = math.ceil(n_train / min(batch_size, n_train))
    cfg = config(spe, steps, model, batch_size, seed)
    t0 = time.perf_counter()
    trainer = Trainer(data, cfg)
    while int(trainer.state.step) < steps:
        trainer.train_epoch()
    wall = time.perf_counter() - t0
    means = posterior_means(trainer.best_params, cfg, data)
    r2 = [
        round(float(r2_per_neuron(m["rates"] / data.bin_size, t)[1]), 4)
        for m, t in zip(means, true_hz)
    ]
    return {
        "r2": r2,
        "steps": int(trainer.state.step),
        "epochs": trainer.epoch,
        "best_epoch": trainer.best_epoch,
        "batch_size": trainer.batch_size,
        "train_trials": n_train,
        "wall_s": round(wall, 1),
    }


def recovery(units, trials, n_conditions, steps, model, batch_size, seed) -> dict:
    """Joint fit of all sessions vs the last (small) session alone, same step budget."""
    sess, dss = make_sessions(units, trials, n_conditions, seed)
    true = [s.rates_hz for s in sess]
    joint = fit_r2(dss, true, steps, model, batch_size, seed)
    alone = fit_r2(dss[-1:], true[-1:], steps, model, batch_size, seed)
    return {
        "small_joint_r2": joint["r2"][-1],
        "small_alone_r2": alone["r2"][0],
        "margin": round(joint["r2"][-1] - alone["r2"][0], 4),
        "large_joint_r2": joint["r2"][:-1],
        "joint": joint,
        "alone": alone,
    }


def _epoch_rate(datasets, model, batch_size, epochs: int) -> dict:
    from nwb_lfads.config import DataConfig, RunConfig
    from nwb_lfads.data import prepare_data
    from nwb_lfads.train.trainer import Trainer

    data = prepare_data(datasets, DataConfig())
    cfg = RunConfig().replace(
        model=model, train=dict(batch_size=batch_size, early_stop_patience=10**6)
    )
    trainer = Trainer(data, cfg)
    t0 = time.perf_counter()
    trainer.train_epoch()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(epochs):
        trainer.train_epoch()
    dt = time.perf_counter() - t0
    trials = epochs * trainer.steps_per_epoch * trainer.batch_size
    return {
        "trials_per_s": round(trials / dt, 1),
        "epoch_s": round(dt / epochs, 3),
        "first_epoch_s": round(compile_s, 1),
        "units": [s.n_units for s in data.sessions],
        "trials": int(data.spikes.shape[0]),
        "steps_per_epoch": trainer.steps_per_epoch,
    }


def throughput(units, trials_each: int, model, batch_size, epochs: int, seed: int) -> dict:
    """Trials/s of five (``units``) sessions vs one session of max(units) units, same total trials."""
    n_cond = 20
    _, multi = make_sessions(units, [trials_each] * len(units), n_cond, seed)
    _, single = make_sessions([max(units)], [trials_each * len(units)], n_cond, seed)
    m = _epoch_rate(multi, model, batch_size, epochs)
    s = _epoch_rate(single, model, batch_size, epochs)
    return {
        "multi": m,
        "single": s,
        "ratio_single_over_multi": round(s["trials_per_s"] / m["trials_per_s"], 3),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--units", type=int, nargs="+", default=[40, 55, 70], help="units per session; last = small"
    )
    p.add_argument(
        "--trials", type=int, nargs="+", default=[400, 400, 20], help="trials per session"
    )
    p.add_argument("--conditions", type=int, default=20)
    p.add_argument(
        "--steps", type=int, default=1200, help="optimizer steps of each fit (the shared budget)"
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--gen-dim", type=int, default=MODEL["gen_dim"])
    p.add_argument("--fac-dim", type=int, default=MODEL["fac_dim"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tp-units", type=int, nargs="+", default=[40, 60, 80, 100, 120])
    p.add_argument(
        "--tp-trials", type=int, default=200, help="trials per session in the throughput test"
    )
    p.add_argument("--tp-epochs", type=int, default=3, help="timed epochs after the first")
    p.add_argument("--skip-recovery", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args(argv)
    if len(args.units) != len(args.trials):
        raise SystemExit("--units and --trials need one value per session")
    model = dict(MODEL, gen_dim=args.gen_dim, fac_dim=args.fac_dim)
    out: dict = {
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "n_cpus": os.cpu_count(),
        "budget": f"same optimizer steps ({args.steps})",
        "model": model,
        "units": args.units,
        "trials": args.trials,
        "seed": args.seed,
    }
    t0 = time.perf_counter()
    if not args.skip_recovery:
        out["recovery"] = recovery(
            args.units, args.trials, args.conditions, args.steps, model, args.batch_size, args.seed
        )
        rec = out["recovery"]
        rec["accept"] = rec["margin"] >= 0.10
        print(
            f"small session R^2: joint {rec['small_joint_r2']:.3f}, alone {rec['small_alone_r2']:.3f} "
            f"(margin {rec['margin']:+.3f}, accept >= +0.10: {rec['accept']}); large sessions, joint: "
            f"{', '.join(f'{r:.3f}' for r in rec['large_joint_r2'])}",
            file=sys.stderr,
            flush=True,
        )
        print(json.dumps({"partial": rec}), file=sys.stderr, flush=True)
    if not args.skip_throughput:
        out["throughput"] = throughput(
            args.tp_units, args.tp_trials, model, args.batch_size, args.tp_epochs, args.seed
        )
        out["throughput"]["accept"] = out["throughput"]["ratio_single_over_multi"] <= 1.3
    out["total_s"] = round(time.perf_counter() - t0, 1)
    out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
