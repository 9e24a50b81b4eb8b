"""Multi-session stitching, a recovery suite over random scenarios and throughput: one JSON line.

    python bench/stitching.py --skip-throughput --seeds 5 --seconds 60
    python bench/stitching.py --skip-throughput --set train.session_sampling=balanced

**Recovery suite.** For each of ``--seeds`` seeds (``--first-seed``, +1, ...) a scenario is
drawn from a seeded RNG: 2 to ``--max-sessions`` sessions, 30-80 units each, 10-40 conditions,
one small session of 20-100 trials (the last) and larger ones of 200-400 (trial counts are
whole multiples of the conditions, so all sessions run through the same conditions), all from
one latent chaotic RNN (:func:`nwb_lfads.synthetic.generate_sessions`, each session with its
own units and log-linear read-out). The draw depends only on the seed and ``--max-sessions``,
so variants (``--set KEY=VALUE``, applied to every fit) are compared on the same data.

Every scenario is fitted twice over: the JOINT (stitched) model of all its sessions, and EVERY
session ALONE, each fit for ``--seconds`` of training (epochs and their validation passes)
after its first epoch (compilation). ``--clock cpu`` (default) counts the process's CPU seconds
divided by the number of JAX devices, which on an idle host with one device per core is the wall
time, and which other processes' load does not shorten; ``--clock wall`` counts the Trainer's
wall time. Same model and settings in every fit: :data:`MODEL`, :data:`TRAIN` (``kl_ic_scale``
0.5: at the default 1.0 the tiny model sometimes collapses its initial-condition posterior;
early stopping off, so every fit uses its budget; the learning rate may still reach ``lr_min``,
which ends a fit), then the overrides (read-in settings do not apply to a single session
without ``model.readin_dim``: :func:`alone_config`). ``--reuse-alone FILE`` takes the
single-session fits from an earlier line with the same budget and single-session config.
Score: per-neuron R^2 (:func:`nwb_lfads.metrics.r2_per_neuron`, all trials and bins, averaged
over units) of the best parameters' posterior-mean rates (Hz) against the true rates (Hz), every
trial of the session (training and validation).

Output (one JSON line): ``settings`` (seeds, seconds, max_sessions, model, train), ``sets``,
``commit`` and ``dirty`` (uncommitted changes under nwb_lfads/ or in this file), ``scenarios``
(per seed: ``conditions``, ``joint`` fit details, ``sessions`` rows: ``role``
small/large, ``units``, ``trials``, ``r2_joint``, ``r2_alone``, ``gain`` = joint minus alone,
``epochs_joint`` / ``epochs_alone``, ``steps_alone``, ``trials_per_s_joint`` /
``trials_per_s_alone`` = this session's training trials drawn into batches per second of each
fit), ``summary`` (``small``: mean, min, sd (n-1) and number of positive gains over seeds;
``large``: worst (lowest) gain; ``accept`` against the issue's bar: small mean >= 0.10 and
min > 0, no large gain below -0.02), ``total_s``. A readable table goes to stderr.

**Throughput.** Trials per second of the training step measured with the Trainer: the
wall time of ``train_epoch`` (optimizer steps plus the validation pass) for epochs 2.., the
first (compilation) excluded, trials = training trials per epoch. Eight sessions of
``--tp-units`` (default 40..120 units) vs one session with the same total trials and the largest
unit count, three interleaved rounds, the best of each. Output ``throughput``: ``multi`` and
``single`` (``trials_per_s``, ``epoch_s``, ``first_epoch_s``, ...),
``ratio_single_over_multi``, and ``accept``: that ratio <= 1.10.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
TRAIN = dict(
    batch_size=64,
    kl_ic_scale=0.5,  # see the module docstring
    early_stop_patience=10**6,
    max_epochs=10**6,
    n_samples=20,
)
UNITS, SMALL_TRIALS, LARGE_TRIALS, CONDITIONS = (30, 80), (20, 100), (200, 400), (10, 40)
SMALL_MEAN_BAR, LARGE_LOSS_BAR = 0.10, -0.02  # the acceptance
TP_BAR = 1.10  # single-session trials/s at most 10 % above the stitched sessions' trials/s


def draw_scenario(seed: int, max_sessions: int) -> dict:
    """Sessions, units, conditions and trials of one scenario; the small session is the last."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, max_sessions + 1))
    c = int(rng.integers(CONDITIONS[0], CONDITIONS[1] + 1))
    units = [int(u) for u in rng.integers(UNITS[0], UNITS[1] + 1, size=n)]

    def reps(lo: int, hi: int) -> int:  # trials per condition so that lo <= c * reps <= hi
        return int(rng.integers(-(-lo // c), hi // c + 1))

    tpc = [reps(*LARGE_TRIALS) for _ in range(n - 1)] + [reps(*SMALL_TRIALS)]
    return {"seed": seed, "conditions": c, "units": units, "trials_per_condition": tpc}


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


def make_sessions(units, trials_per_condition, n_conditions: int, seed: int):
    """Synthetic sessions of one latent system; returns (SyntheticSession list, Dataset list)."""
    from nwb_lfads.synthetic import generate_sessions

    sess = generate_sessions(
        "chaotic",
        sessions=len(units),
        seed=seed,
        n_conditions=n_conditions,
        trials_per_condition=list(trials_per_condition),
        n_units=list(units),
    )
    return sess, [to_dataset(s, f"sim{i}") for i, s in enumerate(sess)]


def fit(
    datasets, true_hz, cfg, seconds: float, steps: int | None = None, clock: str = "cpu"
) -> dict:
    """Train on ``datasets`` for ``seconds`` of training time after the first epoch (or, given
    ``steps``, whole epochs up to at least that many optimizer steps); R^2 per session of the
    best parameters' posterior-mean rates against ``true_hz`` (float Hz [K_s, T, N_s] each).

    ``clock``: ``"cpu"`` counts this process's CPU seconds divided by the number of JAX
    devices (on an idle host with one device per core that equals wall time, and other
    processes' load does not shorten a fit); ``"wall"`` counts the Trainer's wall time."""
    import numpy as np

    from nwb_lfads.config import SessionSampling
    from nwb_lfads.data import prepare_data
    from nwb_lfads.infer import posterior_means
    from nwb_lfads.metrics import r2_per_neuron
    from nwb_lfads.train.trainer import Trainer

    t0 = time.perf_counter()
    data = prepare_data(datasets, cfg.data)
    trainer = Trainer(data, cfg)
    import jax

    n_dev = len(jax.devices())

    def now() -> float:
        return time.process_time() / n_dev if clock == "cpu" else trainer.elapsed

    trainer.train_epoch()  # compiles: not counted in the budget
    first, steps0, c0 = trainer.elapsed, int(trainer.state.step), now()
    while not trainer.stop_reason and (
        now() - c0 < seconds if steps is None else int(trainer.state.step) < steps
    ):
        trainer.train_epoch()
    budget_s = now() - c0
    means = posterior_means(trainer.best_params, cfg, data)
    r2 = [float(r2_per_neuron(m["rates"] / data.bin_size, t)[1]) for m, t in zip(means, true_hz)]
    per = np.bincount(data.session[data.train], minlength=data.n_sessions)
    balanced = cfg.train.session_sampling == SessionSampling.BALANCED and data.n_sessions > 1
    share = np.full(data.n_sessions, 1.0 / data.n_sessions) if balanced else per / per.sum()
    steps = int(trainer.state.step)
    rate = (steps - steps0) * trainer.batch_size / max(trainer.elapsed - first, 1e-9)
    return {
        "r2": [round(x, 4) for x in r2],
        "epochs": trainer.epoch,
        "best_epoch": trainer.best_epoch,
        "steps": steps,
        "batch_size": trainer.batch_size,
        "train_trials": per.tolist(),
        "trials_per_s": [round(rate * p, 1) for p in share],
        "train_s": round(trainer.elapsed, 1),
        "budget_s": round(budget_s, 1),
        "first_epoch_s": round(first, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "stop_reason": trainer.stop_reason,
    }


def alone_config(cfg):
    """``cfg`` for a single session, its automatic settings resolved for one session
    (:func:`nwb_lfads.config.resolve_for_data`): without ``model.readin_dim`` one session has no
    read-in, so the read-in settings (``model.readin_init``, ``train.train_readin``) return to
    their defaults there."""
    from nwb_lfads.config import ReadinMethod, resolve_for_data

    if cfg.model.readin_dim == 0:  # no read-in: its settings do not apply
        cfg = cfg.replace(model={"readin_init": ReadinMethod.RANDOM}, train={"train_readin": True})
    return resolve_for_data(cfg, 1)


def scenario(
    draw: dict, cfg, seconds: float, log, clock: str = "cpu", reuse: dict | None = None
) -> dict:
    """The joint fit of a drawn scenario and every session alone; per-session rows.

    ``reuse``: {(seed, session): row} of earlier single-session fits of the same scenario,
    budget and single-session config (see ``--reuse-alone``); those sessions are not refitted."""
    c, units, tpc = draw["conditions"], draw["units"], draw["trials_per_condition"]
    sess, dss = make_sessions(units, tpc, c, draw["seed"])
    true = [s.rates_hz for s in sess]
    joint = fit(dss, true, cfg, seconds, clock=clock)
    rows = []
    for i in range(len(dss)):
        old = (reuse or {}).get((draw["seed"], i))
        if old is not None:
            alone = {
                "r2": [old["r2_alone"]],
                "epochs": old["epochs_alone"],
                "steps": old["steps_alone"],
                "trials_per_s": [old["trials_per_s_alone"]],
                **old["alone"],
            }
        else:
            alone = fit(dss[i : i + 1], true[i : i + 1], alone_config(cfg), seconds, clock=clock)
        rows.append(
            {
                "session": i,
                "role": "small" if i == len(dss) - 1 else "large",
                "units": units[i],
                "trials": tpc[i] * c,
                "r2_joint": joint["r2"][i],
                "r2_alone": alone["r2"][0],
                "gain": round(joint["r2"][i] - alone["r2"][0], 4),
                "epochs_joint": joint["epochs"],
                "epochs_alone": alone["epochs"],
                "steps_alone": alone["steps"],
                "trials_per_s_joint": joint["trials_per_s"][i],
                "trials_per_s_alone": alone["trials_per_s"][0],
                "alone": {
                    k: alone[k]
                    for k in ("best_epoch", "batch_size", "train_s", "wall_s", "stop_reason")
                },
            }
        )
        log(draw["seed"], rows[-1])
    return {**draw, "joint": joint, "sessions": rows}


def load_alone(path: str, settings: dict, alone_cfg: dict) -> dict:
    """Single-session rows of an earlier result (a JSON line of this script in ``path``, the
    last one whose budget, clock and single-session config equal these): {(seed, session): row}."""
    found: dict = {}
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        s = r.get("settings", {})
        if (
            "scenarios" in r
            and s.get("seconds") == settings["seconds"]
            and s.get("clock", "wall") == settings["clock"]
            and s.get("max_sessions") == settings["max_sessions"]
            and _same_config(r.get("alone_config") or {}, alone_cfg)
        ):
            found = {
                (sc["seed"], row["session"]): row for sc in r["scenarios"] for row in sc["sessions"]
            }
    if not found:
        raise SystemExit(
            f"--reuse-alone {path}: no line with the same budget and single-session config"
        )
    return found


def _same_config(old: dict, new: dict) -> bool:
    """Whether a config dict of an earlier line equals ``new``; fields that line predates must
    hold their defaults in ``new`` (added later, they did not exist, i.e. were off)."""
    from nwb_lfads.config import RunConfig

    default = RunConfig().to_dict()
    return all(
        (old[sec][k] == v) if k in old.get(sec, {}) else (v == default[sec][k])
        for sec, values in new.items()
        for k, v in values.items()
    ) and all(k in new.get(sec, {}) for sec, values in old.items() for k in values)


def summarize(scenarios: list[dict]) -> dict:
    """Small sessions: mean / min / sd of the gains over seeds; large: the worst gain."""
    small = [r["gain"] for s in scenarios for r in s["sessions"] if r["role"] == "small"]
    large = [r["gain"] for s in scenarios for r in s["sessions"] if r["role"] == "large"]
    out = {
        "small": {
            "n": len(small),
            "mean": round(statistics.fmean(small), 4) if small else None,
            "min": min(small, default=None),
            "sd": round(statistics.stdev(small), 4) if len(small) > 1 else None,
            "n_positive": sum(g > 0 for g in small),
        },
        "large": {
            "n": len(large),
            "worst": min(large, default=None),
            "mean": round(statistics.fmean(large), 4) if large else None,
        },
    }
    out["accept"] = bool(
        small
        and out["small"]["mean"] >= SMALL_MEAN_BAR
        and out["small"]["min"] > 0
        and (not large or out["large"]["worst"] >= LARGE_LOSS_BAR)
    )
    return out


def _log_row(seed: int, r: dict) -> None:
    print(
        f"{seed:>4} {r['session']:>3} {r['role']:<5} {r['units']:>5} {r['trials']:>6} "
        f"{r['r2_joint']:>7.3f} {r['r2_alone']:>7.3f} {r['gain']:>+7.3f} "
        f"{r['epochs_joint']:>6} {r['epochs_alone']:>6} "
        f"{r['trials_per_s_joint']:>8.0f} {r['trials_per_s_alone']:>8.0f}",
        file=sys.stderr,
        flush=True,
    )


def recovery(units, trials, n_conditions, steps, model, batch_size, seed) -> dict:
    """The earlier fixed-step check (tests/test_stitching_fit.py): the joint fit against the
    last (small) session alone, ``steps`` optimizer steps each; the epoch-counted KL/L2 ramps
    (30 % of the steps) and learning-rate patience (10 %) span the same steps in both fits."""
    import math

    from nwb_lfads.config import RunConfig
    from nwb_lfads.data import prepare_data

    sess, dss = make_sessions(units, [k // n_conditions for k in trials], n_conditions, seed)
    true = [s.rates_hz for s in sess]
    res = {}
    for name, sub in (("joint", slice(None)), ("alone", slice(-1, None))):
        cfg = RunConfig().replace(model=model, train=dict(TRAIN, batch_size=batch_size, seed=seed))
        n_train = int(prepare_data(dss[sub], cfg.data).train.sum())
        spe = math.ceil(n_train / min(batch_size, n_train))
        ramp, patience = (max(1, round(f * steps / spe)) for f in (0.3, 0.1))
        cfg = cfg.replace(
            train=dict(kl_increase_epochs=ramp, l2_increase_epochs=ramp, lr_patience=patience)
        )
        res[name] = fit(dss[sub], true[sub], cfg, math.inf, steps=steps)
    return {
        "small_joint_r2": res["joint"]["r2"][-1],
        "small_alone_r2": res["alone"]["r2"][0],
        "large_joint_r2": res["joint"]["r2"][:-1],
        **res,
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


def throughput(
    units, trials_each: int, model, batch_size, epochs: int, seed: int, rounds: int = 3
) -> dict:
    """Trials/s of len(``units``) sessions vs one session of max(units) units and the same total
    trials; ``rounds`` interleaved measurements of each (the best of each is compared, so that a
    burst of other load on the host does not decide the ratio)."""
    n_cond = 20
    reps = trials_each // n_cond
    _, multi = make_sessions(units, [reps] * len(units), n_cond, seed)
    _, single = make_sessions([max(units)], [reps * len(units)], n_cond, seed)
    runs: dict = {"multi": [], "single": []}
    for _ in range(rounds):
        runs["multi"].append(_epoch_rate(multi, model, batch_size, epochs))
        runs["single"].append(_epoch_rate(single, model, batch_size, epochs))
    m, s = (max(runs[k], key=lambda r: r["trials_per_s"]) for k in ("multi", "single"))
    return {
        "multi": {**m, "all_trials_per_s": [r["trials_per_s"] for r in runs["multi"]]},
        "single": {**s, "all_trials_per_s": [r["trials_per_s"] for r in runs["single"]]},
        "ratio_single_over_multi": round(s["trials_per_s"] / m["trials_per_s"], 3),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5, help="scenarios, one per seed")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=60.0, help="training time of each fit")
    p.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="budget in CPU seconds per device (robust to other load) or wall seconds",
    )
    p.add_argument("--max-sessions", type=int, default=4, help="2 to 8 sessions per scenario")
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    p.add_argument("--tp-units", type=int, nargs="+", default=[40, 50, 60, 70, 80, 90, 100, 120])
    p.add_argument(
        "--tp-trials", type=int, default=200, help="trials per session in the throughput test"
    )
    p.add_argument("--tp-epochs", type=int, default=3, help="timed epochs after the first")
    p.add_argument(
        "--reuse-alone",
        metavar="JSONL",
        help="take the single-session fits from an earlier result with the same budget and "
        "single-session config (for variants that change only the joint fit)",
    )
    p.add_argument("--skip-recovery", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args(argv)
    if not 2 <= args.max_sessions <= 8:
        raise SystemExit("--max-sessions: expected 2 to 8")

    from nwb_lfads.train.host_devices import split_host

    split_host()  # as the command line does: one CPU device per core
    import jax

    from nwb_lfads.config import RunConfig

    cfg = RunConfig().replace(model=MODEL, train=TRAIN).with_overrides(args.set)
    dirty = _git("status", "--porcelain", "--", "nwb_lfads", "bench/stitching.py")
    out: dict = {
        "bench": "stitching",
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(dirty),
        "n_cpus": os.cpu_count(),
        "devices": len(jax.devices()),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "settings": {
            "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
            "seconds": args.seconds,
            "clock": args.clock,
            "max_sessions": args.max_sessions,
            "model": MODEL,
            "train": TRAIN,
        },
        "sets": args.set,
    }
    out["alone_config"] = alone_config(cfg).to_dict()
    reuse = None
    if args.reuse_alone:
        reuse = load_alone(args.reuse_alone, out["settings"], out["alone_config"])
        out["alone_from"] = args.reuse_alone
    t0 = time.perf_counter()
    if not args.skip_recovery:
        head = "seed ses role  units trials   joint   alone    gain ep_jnt ep_aln tr/s_jnt tr/s_aln"
        print(head, file=sys.stderr, flush=True)
        scenarios = [
            scenario(
                draw_scenario(seed, args.max_sessions),
                cfg,
                args.seconds,
                _log_row,
                args.clock,
                reuse,
            )
            for seed in out["settings"]["seeds"]
        ]
        out["scenarios"] = scenarios
        out["summary"] = s = summarize(scenarios)
        print(
            f"small sessions (n={s['small']['n']}): gain mean {s['small']['mean']}, "
            f"min {s['small']['min']}, sd {s['small']['sd']}, positive {s['small']['n_positive']}; "
            f"large sessions (n={s['large']['n']}): worst {s['large']['worst']}; "
            f"accept {s['accept']}",
            file=sys.stderr,
            flush=True,
        )
    if not args.skip_throughput:
        out["throughput"] = throughput(
            args.tp_units, args.tp_trials, MODEL, TRAIN["batch_size"], args.tp_epochs, 0
        )
        out["throughput"]["accept"] = out["throughput"]["ratio_single_over_multi"] <= TP_BAR
    out["total_s"] = round(time.perf_counter() - t0, 1)
    out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
