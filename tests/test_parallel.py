"""Data parallelism over the batch axis (``train.devices``, ``nwb-lfads fit --devices``).

The 2-device checks run in a subprocess (this file run as a script) because XLA's CPU device
count must be set before JAX starts: ``XLA_FLAGS=--xla_force_host_platform_device_count=2``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nwb_lfads.config import RunConfig
from nwb_lfads.errors import ConfigError

T, N, M, B = 10, 5, 24, 8
TINY = dict(
    model=dict(ic_enc_dim=6, ci_enc_dim=4, ic_dim=4, gen_dim=8, con_dim=4, co_dim=0, fac_dim=3),
    train=dict(
        batch_size=B,
        n_samples=2,
        lr_init=1e-3,
        kl_increase_epochs=1,
        l2_increase_epochs=1,
        devices=1,
    ),
    data=dict(valid_fraction=0.25),
)


def tiny_data(n_trials: int = M):
    """A synthetic one-session TrainingData: Poisson counts float32 [n_trials, T, N]."""
    from nwb_lfads.data import SessionInfo, TrainingData

    rng = np.random.default_rng(0)
    spikes = rng.poisson(0.3, (n_trials, T, N)).astype(np.float32)
    valid = np.arange(n_trials) % 4 == 0
    return TrainingData(
        spikes,
        np.zeros(n_trials, np.int32),
        np.ones((1, N), bool),
        np.ones((1, N), bool),
        np.ones((n_trials, N), bool),
        ~valid,
        valid,
        np.zeros(n_trials, bool),
        spikes.mean(axis=(0, 1))[None],
        (np.arange(T) + 0.5) * 0.01,
        0.01,
        (SessionInfo("tiny", "tiny", N, tuple(range(N)), tuple(range(n_trials)), (False,) * N),),
    )


def _max_diff(a, b) -> float:
    import jax

    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
        if np.size(x)
    )


def while_depths(hlo: str) -> tuple[int, int]:
    """(deepest while-loop nesting of the compiled program, deepest nesting of any of its
    all-reduces), from optimized HLO text: 0 = outside every loop."""
    import re

    comps, name = {}, None
    for line in hlo.splitlines():
        head = re.match(r"(?:ENTRY )?%?([\w.\-]+) \(.*\{$", line)
        if head and not line.startswith(" "):
            name = head.group(1)
            comps[name] = {"entry": line.startswith("ENTRY"), "calls": [], "all_reduce": False}
        elif name:
            comps[name]["all_reduce"] |= " all-reduce(" in line or " all-reduce-start(" in line
            for kind, callee in re.findall(r"(body|condition|calls|to_apply)=%([\w.\-]+)", line):
                comps[name]["calls"].append((callee, kind == "body"))
            for group in re.findall(r"branch_computations=\{([^}]*)\}", line):
                comps[name]["calls"] += [(c.strip().lstrip("%"), False) for c in group.split(",")]
    depth_loops = depth_reduce = 0
    stack = [(n, 0) for n, c in comps.items() if c["entry"]]
    while stack:
        n, d = stack.pop()
        depth_loops = max(depth_loops, d)
        if comps[n]["all_reduce"]:
            depth_reduce = max(depth_reduce, d)
        stack += [(callee, d + is_body) for callee, is_body in comps[n]["calls"] if callee in comps]
    return depth_loops, depth_reduce


def _child() -> dict:
    """Run with 2 CPU devices: devices=1 vs devices=2 on the same data, params and RNG."""
    import jax
    import jax.numpy as jnp

    from nwb_lfads.train.trainer import Trainer

    data = tiny_data()
    cfg = RunConfig().replace(**TINY)
    one, two = Trainer(data, cfg), Trainer(data, cfg.replace(train={"devices": 2}))
    auto = Trainer(data, cfg.replace(train={"devices": 0}))  # automatic: every CPU device
    out = {
        "n_devices": len(jax.devices()),
        "mesh": [one.parallel.n_devices, two.parallel.n_devices],
        "auto_mesh": auto.parallel.n_devices,
        "init_params_diff": _max_diff(one.params, two.params),
    }
    # (a) one step's loss and gradients
    (m1, g1), (m2, g2) = one.gradient(), two.gradient()
    out["loss"] = [m1["loss"], m2["loss"]]
    out["grad_max_abs"] = max(
        float(np.max(np.abs(g))) for g in jax.tree_util.tree_leaves(g1) if np.size(g)
    )
    out["grad_diff"] = _max_diff(g1, g2)
    # (b) two epochs of training (several compiled calls, validation included)
    rows = [(one.train_epoch(), two.train_epoch()) for _ in range(2)]
    out["steps"] = int(two.state.step)
    out["valid_loss"] = [[r1["valid_loss"], r2["valid_loss"]] for r1, r2 in rows]
    out["param_diff"] = _max_diff(one.params, two.params)
    out["param_change"] = _max_diff(one.params, Trainer(data, cfg).params)
    # a checkpoint of the 1-device run resumed on 2 devices continues with the same next step
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        one.save(f"{tmp}/ckpt")
        resumed = Trainer(data, cfg.replace(train={"devices": 2}))
        resumed.restore(f"{tmp}/ckpt")
    (m1, g1), (m3, g3) = one.gradient(), resumed.gradient()
    out["resume_loss"] = [m1["loss"], m3["loss"]]
    out["resume_grad_diff"] = _max_diff(g1, g3)
    # (c) the compiled step splits the batch: per-device spikes [B/2, T, N] and an all-reduce
    # (looked up after the calls above, so nothing compiles again)
    args = (two.state, two.device)
    hlo2 = two._update.lower(*args).compile().as_text()
    hlo1 = one._update.lower(one.state, one.device).compile().as_text()
    out["hlo2_half_batch"] = f"f32[{B // 2},{T},{N}]" in hlo2
    out["hlo2_all_reduce"] = "all-reduce" in hlo2
    out["hlo1_all_reduce"] = "all-reduce" in hlo1
    out["hlo2_while_depths"] = while_depths(hlo2)
    leaf = jax.tree_util.tree_leaves(two.state.params)[0]
    out["params_devices"] = len(leaf.sharding.device_set)
    out["params_replicated"] = bool(leaf.sharding.is_fully_replicated)
    valid_args = (
        two.state.params,
        two.device,
        two._put(two._valid_chunks),
        two._put(jax.random.key(0)),
    )
    out["eval_half_batch"] = (
        f"f32[{B // 2},{T},{N}]" in two._evaluate.lower(*valid_args).compile().as_text()
    )
    # (d) random draws split along their trial axis (first or not) are the whole batch's draws
    from jax.sharding import PartitionSpec as P

    from nwb_lfads.model import noise
    from nwb_lfads.train.parallel import BATCH_AXIS, NO_REPLICATION_CHECK, shard_map

    seed = np.uint32(7)
    for draw in (
        noise.random_bits,
        lambda s, shape, batch_axis: noise.keep_mask(s, 0.3, shape, batch_axis),
    ):
        for axis, shape in ((0, (B, T, 3)), (1, (T, B, 3)), (1, (T, B))):

            def local(dummy, axis=axis, draw=draw):
                with noise.batch_shard(BATCH_AXIS):
                    return draw(seed, dummy.shape, batch_axis=axis)

            spec = P(*([None] * axis + [BATCH_AXIS]))
            split = shard_map(
                local,
                mesh=two.parallel.mesh,
                in_specs=(spec,),
                out_specs=spec,
                **NO_REPLICATION_CHECK,
            )
            whole = np.asarray(draw(seed, shape, batch_axis=axis))
            out.setdefault("noise_split_equal", []).append(
                bool(np.array_equal(np.asarray(jax.jit(split)(jnp.zeros(shape))), whole))
            )
    return out


@pytest.fixture(scope="module")
def two_devices() -> dict:
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_devices_match_one_step(two_devices):
    r = two_devices
    assert r["n_devices"] == 2 and r["mesh"] == [1, 2] and r["auto_mesh"] == 2
    assert r["init_params_diff"] == 0.0
    assert abs(r["loss"][0] - r["loss"][1]) <= 1e-5 * abs(r["loss"][0])
    assert r["grad_max_abs"] > 1e-3  # the gradients compared are not all zero
    assert r["grad_diff"] <= 1e-5 * r["grad_max_abs"]


def test_two_devices_match_after_training(two_devices):
    r = two_devices
    assert r["steps"] >= 4
    assert r["param_change"] > 1e-3  # training moved the parameters ...
    assert r["param_diff"] <= 1e-5  # ... identically on one and two devices
    for v1, v2 in r["valid_loss"]:
        assert abs(v1 - v2) <= 1e-5 * abs(v1)
    l1, l3 = r["resume_loss"]
    assert abs(l1 - l3) <= 1e-5 * abs(l1) and r["resume_grad_diff"] <= 1e-5 * r["grad_max_abs"]


def test_two_devices_split_the_batch(two_devices):
    r = two_devices
    assert r["hlo2_half_batch"] and r["hlo2_all_reduce"]
    assert not r["hlo1_all_reduce"]
    # the gradients are averaged once per step, not inside the model's loops over time bins
    # (XLA's partitioner put an all-reduce at every bin of the backward scans)
    loops, reduce = r["hlo2_while_depths"]
    assert reduce < loops, r["hlo2_while_depths"]
    assert r["params_devices"] == 2 and r["params_replicated"]
    assert r["eval_half_batch"]
    # dropout masks and noise drawn per device are the whole batch's, trial axis first or not
    assert r["noise_split_equal"] == [True] * 6


# ----------------------------------------------------------------------------- errors (in process)
def test_more_devices_than_exist():
    import jax

    from nwb_lfads.train.parallel import make_parallel

    n = len(jax.local_devices()) + 1
    with pytest.raises(
        ConfigError,
        match=rf"train.devices={n}.*only {n - 1} JAX device.*"
        r"xla_force_host_platform_device_count",
    ):
        make_parallel(n, 8 * n)


def _two_local_devices():
    """Pretend this process sees two devices (only the checks run while it holds)."""
    from unittest import mock

    import jax

    return mock.patch.object(jax, "local_devices", return_value=jax.local_devices()[:1] * 2)


def test_batch_not_divisible():
    from nwb_lfads.train.parallel import check_devices

    with _two_local_devices():
        with pytest.raises(
            ConfigError,
            match=r"train.batch_size=7 does not divide by train.devices=2.*"
            r"--set train.batch_size=6 or 8",
        ):
            check_devices(2, 7)
    with pytest.raises(ConfigError, match=r"train.devices=-1: expected a whole number"):
        check_devices(-1, 8)
    check_devices(0, 7)  # automatic never refuses a batch size


def test_automatic_devices_take_every_cpu_device_that_divides_the_batch():
    from unittest import mock

    import jax

    from nwb_lfads.train.parallel import auto_devices

    cpu = jax.local_devices()[0]
    assert cpu.platform == "cpu"
    with mock.patch.object(jax, "local_devices", return_value=[cpu] * 4):
        assert [auto_devices(b) for b in (128, 6, 7, None)] == [4, 3, 1, 4]
    with mock.patch.object(jax, "local_devices", return_value=[mock.Mock(platform="gpu")] * 4):
        assert auto_devices(128) == 1  # several accelerators only when asked for (--devices N)


def test_split_host_sets_the_flag_only_before_jax_and_never_over_the_user(monkeypatch):
    import jax  # noqa: F401  (the first check needs JAX imported, also when this test runs alone)

    from nwb_lfads.train import host_devices as hd

    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert (
        hd.split_host(3) is None and "XLA_FLAGS" not in os.environ
    )  # JAX is already imported here
    monkeypatch.delitem(sys.modules, "jax")
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    assert hd.split_host(3) == 3
    assert (
        os.environ["XLA_FLAGS"]
        == "--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count=3"
    )
    assert hd.split_host(5) is None  # a count already named wins
    assert os.environ["XLA_FLAGS"].endswith("count=3")
    monkeypatch.setenv("XLA_FLAGS", "")
    assert hd.split_host(1) == 1 and os.environ["XLA_FLAGS"] == ""
    assert 1 <= hd.default_split() <= hd.MAX_SPLIT


def test_trainer_rejects_indivisible_batch():
    from nwb_lfads.train.trainer import Trainer

    cfg = RunConfig().replace(**TINY).replace(train={"devices": 2, "batch_size": 9})
    with _two_local_devices():
        with pytest.raises(
            ConfigError,
            match=r"train.batch_size=9 does not divide by train.devices=2.*"
            r"multiple of 2",
        ):
            Trainer(tiny_data(), cfg)


def test_devices_config_round_trip():
    cfg = RunConfig().with_overrides(["train.devices=2"])
    assert cfg.train.devices == 2 and RunConfig().train.devices == 0  # 0 = automatic
    assert RunConfig.from_yaml(cfg.to_yaml()) == cfg
    with pytest.raises(ConfigError, match=r"train.devices: expected an integer"):
        RunConfig().with_overrides(["train.devices=two"])


def test_cli_devices_beyond_available(tmp_path, mc_maze_small):
    import jax
    from click.testing import CliRunner

    from cli.main import main

    n = len(jax.local_devices()) + 1
    result = CliRunner().invoke(
        main, ["fit", str(mc_maze_small), "--out", str(tmp_path / "run"), "--devices", str(n)]
    )
    assert result.exit_code == 2, result.output
    assert (
        f"only {n - 1} JAX device" in result.output
        and "xla_force_host_platform_device_count" in result.output
    )
    assert not (tmp_path / "run").exists()


def test_cli_batch_not_divisible(tmp_path, mc_maze_small):
    from click.testing import CliRunner

    from cli.main import main

    with _two_local_devices():
        result = CliRunner().invoke(
            main,
            [
                "fit",
                str(mc_maze_small),
                "--out",
                str(tmp_path / "run"),
                "--devices",
                "2",
                "--set",
                "train.batch_size=9",
            ],
        )
    assert result.exit_code == 2, result.output
    assert "train.batch_size=9 does not divide by train.devices=2" in result.output
    assert not (tmp_path / "run").exists()


def test_cli_set_devices_and_distributed_flag(tmp_path, mc_maze_small):
    """``--set train.devices=N`` is checked like ``--devices``; ``--distributed`` calls
    jax.distributed.initialize() first and turns its failure into a usage error."""
    from unittest import mock

    import jax
    from click.testing import CliRunner

    from cli.main import main

    n = len(jax.local_devices()) + 1
    args = [
        "fit",
        str(mc_maze_small),
        "--out",
        str(tmp_path / "run"),
        "--set",
        f"train.devices={n}",
    ]
    with mock.patch.object(jax.distributed, "initialize") as init:
        result = CliRunner().invoke(main, args + ["--distributed"])
    assert init.call_count == 1
    assert result.exit_code == 2 and f"train.devices={n}" in result.output
    with mock.patch.object(
        jax.distributed,
        "initialize",
        side_effect=ValueError("coordinator_address should be defined."),
    ):
        result = CliRunner().invoke(main, args + ["--distributed"])
    assert (
        result.exit_code == 2
        and "--distributed: jax.distributed.initialize() could not" in result.output
    )


def _process_child(process_id: int, port: int) -> dict:
    """One of two processes joined by jax.distributed on this machine, one CPU device each."""
    import jax

    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id)
    from nwb_lfads.train.trainer import Trainer

    trainer = Trainer(tiny_data(), RunConfig().replace(**TINY))  # train.devices=1 per process
    metrics, _ = trainer.gradient()
    return {
        "mesh": trainer.parallel.n_devices,
        "loss": metrics["loss"],
        "valid": trainer.evaluate()["valid_loss"],
    }


@pytest.mark.slow  # two processes compiling the model (~25 s of CPU)
def test_two_processes_match_two_devices(two_devices):
    """Multi-host data parallelism (jax.distributed) on one machine: each process holds one
    device, the mesh spans both, and the step's loss equals the single-process 2-device one."""
    import socket

    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "process", str(i), str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    results = []
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    assert [r["mesh"] for r in results] == [2, 2]
    assert results[0] == results[1]
    assert abs(results[0]["loss"] - two_devices["loss"][1]) <= 1e-5 * abs(two_devices["loss"][1])


if __name__ == "__main__":
    if sys.argv[1:2] == ["process"]:
        print(json.dumps(_process_child(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        print(json.dumps(_child()))
