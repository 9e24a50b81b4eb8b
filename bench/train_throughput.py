"""Training throughput of the full LFADS step: prints one JSON line.

    python bench/train_throughput.py --neurons 50 --bins 100 --batch-size 256 \
        --enc-dim 64 --ic-dim 64 --gen-dim 64 --con-dim 32 --co-dim 4 --fac-dim 20

``trials_per_s`` counts trials through complete optimizer steps (forward, backward, Adam)
after compilation, on synthetic Poisson data; ``compile_s`` is the wall time of the first
compiled call (trace + XLA compile + one run), ``peak_rss_mb`` the process's peak resident
memory. ``trials_per_s_fastest_call`` is the rate of the fastest timed call (the machine's
speed drifts; compare like with like). ``page_faults_per_step`` and ``kernel_cpu_share`` (system
time over all CPU time of the timed calls) show the cost of fresh memory: on CPU, XLA allocates
each call's temporary buffer anew and the kernel zero-fills its pages on first touch
(docs/DESIGN.md, "Huge pages are documented, not set"). Runs on the default JAX device unless
``--device cpu|gpu`` is given; ``--devices N`` splits each batch over N devices (on CPU, the
host as N XLA devices).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--neurons", type=int, default=50)
    p.add_argument("--bins", type=int, default=100)
    p.add_argument("--trials", type=int, default=2560)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--enc-dim", type=int, default=64)
    p.add_argument("--ic-dim", type=int, default=64)
    p.add_argument("--gen-dim", type=int, default=64)
    p.add_argument("--con-dim", type=int, default=32)
    p.add_argument("--co-dim", type=int, default=4)
    p.add_argument("--fac-dim", type=int, default=20)
    p.add_argument(
        "--steps-per-call", type=int, default=0, help="0 = one epoch per call (at most 50)"
    )
    p.add_argument("--min-seconds", type=float, default=15.0, help="time at least this long")
    p.add_argument("--device", default=None, help="cpu or gpu (default: JAX's default)")
    p.add_argument(
        "--devices",
        type=int,
        default=1,
        help="data parallelism over this many devices (train.devices); on CPU the host is split "
        "into that many XLA devices",
    )
    args = p.parse_args(argv)
    if args.device:
        os.environ["JAX_PLATFORMS"] = {"gpu": "cuda"}.get(args.device, args.device)
    if args.devices > 1 and args.device in (None, "cpu"):
        flag = f"--xla_force_host_platform_device_count={args.devices}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()

    import jax
    import numpy as np

    from nwb_lfads.config import RunConfig
    from nwb_lfads.data import SessionInfo, TrainingData
    from nwb_lfads.train.trainer import Trainer

    M, T, N = args.trials, args.bins, args.neurons
    rng = np.random.default_rng(0)
    spikes = rng.poisson(0.2, (M, T, N)).astype(np.float32)
    ones = np.ones(M, bool)
    data = TrainingData(
        spikes,
        np.zeros(M, np.int32),
        np.ones((1, N), bool),
        np.ones((1, N), bool),
        np.ones((M, N), bool),
        ones,
        ~ones,
        ~ones,
        spikes.mean(axis=(0, 1))[None],
        np.arange(T) * 0.01,
        0.01,
        (SessionInfo("bench", "bench", N, tuple(range(N)), tuple(range(M)), (False,) * N),),
    )
    cfg = RunConfig().replace(
        model=dict(
            ic_enc_dim=args.enc_dim,
            ci_enc_dim=args.enc_dim,
            ic_dim=args.ic_dim,
            gen_dim=args.gen_dim,
            con_dim=args.con_dim,
            co_dim=args.co_dim,
            fac_dim=args.fac_dim,
        ),
        train=dict(
            batch_size=args.batch_size, steps_per_call=args.steps_per_call, devices=args.devices
        ),
    )
    trainer = Trainer(data, cfg)
    t0 = time.perf_counter()
    state, m = trainer._update(trainer.state, trainer.device)
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - t0
    calls, call_s = 0, []
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    while True:
        t_call = time.perf_counter()
        state, m = trainer._update(state, trainer.device)
        calls += 1
        jax.block_until_ready(state)
        call_s.append(time.perf_counter() - t_call)
        elapsed = time.perf_counter() - t0
        if elapsed >= args.min_seconds and calls >= 2:
            break
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    steps = calls * trainer.steps_per_call
    cpu_s = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    result = {
        "trials_per_s": round(steps * trainer.batch_size / elapsed, 1),
        "trials_per_s_fastest_call": round(
            trainer.steps_per_call * trainer.batch_size / min(call_s), 1
        ),
        "step_ms": round(1000 * elapsed / steps, 2),
        "page_faults_per_step": round((r1.ru_minflt - r0.ru_minflt) / steps),
        "kernel_cpu_share": round((r1.ru_stime - r0.ru_stime) / cpu_s, 3) if cpu_s > 0 else None,
        "compile_s": round(compile_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "steps": steps,
        "steps_per_call": trainer.steps_per_call,
        "loss_finite": bool(np.isfinite(float(m["loss"]))),
        "device": str(jax.devices()[0]),
        "n_cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "config": {k: v for k, v in vars(args).items() if k not in ("min_seconds",)},
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
