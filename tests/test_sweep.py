"""nwb-lfads sweep: search space, PBT wiring on Ray Tune, population log, leaderboard, best/, errors."""

from __future__ import annotations

import csv
import json
import math
import socket
import sys

import pytest
import yaml
from click.testing import CliRunner
from nwb_lfads.cli.main import main

from nwb_lfads.config import RunConfig
from nwb_lfads.errors import ClusterError, ConfigError, RayMissingError, RunDirError
from nwb_lfads.rundir import SweepDir
from nwb_lfads.sweep import space as sp
from nwb_lfads.sweep.cluster import check_reachable, import_ray, parse_address
from nwb_lfads.sweep.member import member_config, member_index, smooth
from nwb_lfads.sweep.population import best_of, exploits, history, lineage, plot_population

TINY = [
    "model.gen_dim=8",
    "model.ic_enc_dim=8",
    "model.ci_enc_dim=4",
    "model.con_dim=4",
    "model.co_dim=1",
    "model.ic_dim=4",
    "model.fac_dim=3",
    "train.batch_size=8",
    "train.n_samples=2",
]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ search space


def test_default_space_is_autolfads_and_inside_its_ranges():
    space = sp.default_search_space()
    assert set(space.names) == {
        "model.dropout_rate",
        "model.cd_rate",
        "train.kl_ic_scale",
        "train.kl_co_scale",
        "train.l2_gen_scale",
        "train.l2_con_scale",
        "train.lr_init",
    }
    for h in space.hyperparameters:
        lo, hi = h.init_range
        assert h.low <= lo <= hi <= h.high
    # the package's own defaults (as resolved for one and for several sessions) lie inside
    # the searched ranges
    from nwb_lfads.config import resolve_for_data

    for cfg in (resolve_for_data(RunConfig(), 1), resolve_for_data(RunConfig(), 3)):
        for name in (
            "train.kl_ic_scale",
            "train.kl_co_scale",
            "train.l2_gen_scale",
            "train.lr_init",
        ):
            section, field = name.split(".")
            assert space[name].low <= getattr(getattr(cfg, section), field) <= space[name].high
    assert space.pbt.quantile_fraction == 0.25 and space.pbt.resample_probability == 0.25
    assert sp.search_space_from_dict(yaml.safe_load(space.to_yaml())) == space


def test_yaml_file_merges_over_defaults(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "hyperparameters:\n"
        "  train.lr_init: {low: 1e-4, high: 1e-2}\n"
        "  train.l2_con_scale: null\n"
        "  model.cd_rate: {init: [0.1, 0.2]}\n"
        "pbt:\n  perturbation_interval: 5\n  synch: false\n"
    )
    space = sp.load_search_space(path)
    assert "train.l2_con_scale" not in space.names
    lr = space["train.lr_init"]
    assert (lr.low, lr.high, lr.scale, lr.init_range) == (1e-4, 1e-2, "log", (1e-4, 1e-2))
    assert space["model.cd_rate"].init_range == (0.1, 0.2) and space["model.cd_rate"].high == 0.7
    assert space.pbt.perturbation_interval == 5 and space.pbt.synch is False
    assert space.pbt.quantile_fraction == 0.25


def test_unknown_hyperparameter_lists_known_ones(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("hyperparameters:\n  model.gen_dim: {low: 8, high: 64}\n")
    with pytest.raises(
        ConfigError, match=r"unknown hyperparameter 'model.gen_dim'.*train\.lr_init"
    ):
        sp.load_search_space(path)
    with pytest.raises(ConfigError, match=r"unknown hyperparameter 'lr'"):
        sp.search_space_from_dict({"hyperparameters": {"lr": None}})


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"train.lr_init": {"low": 1e-2, "high": 1e-3}}, r"low \(0\.01\) must be below high"),
        ({"train.kl_ic_scale": {"low": 0.0, "high": 1.0}}, r"log-scale range needs low > 0"),
        (
            {"model.dropout_rate": {"low": 0.0, "high": 1.5}},
            r"probability: its range must lie in \[0, 1\)",
        ),
        ({"train.lr_init": {"init": [1e-6, 1e-3]}}, r"init \[1e-06, 0\.001\] must lie inside"),
        (
            {"train.lr_init": {"low": "fast", "high": 1.0}},
            r"lr_init\.low: expected a finite number",
        ),
        ({"train.lr_init": {"step": 2}}, r"unknown field\(s\) \['step'\]"),
    ],
)
def test_bad_ranges_are_refused(entry, message):
    with pytest.raises(ConfigError, match=message):
        sp.search_space_from_dict({"hyperparameters": entry})


@pytest.mark.parametrize(
    "pbt, message",
    [
        (
            {"perturbation_interval": 0},
            r"pbt\.perturbation_interval: expected a whole number of epochs >= 1",
        ),
        ({"quantile_fraction": 0.7}, r"pbt\.quantile_fraction: expected a value in \(0, 0\.5\]"),
        ({"perturbation_factors": [0.8, -1]}, r"factors must be positive"),
        ({"generations": 3}, r"pbt: unknown field\(s\) \['generations'\]"),
    ],
)
def test_bad_schedule_is_refused(pbt, message):
    with pytest.raises(ConfigError, match=message):
        sp.search_space_from_dict({"pbt": pbt})


def test_missing_or_empty_search_space(tmp_path):
    with pytest.raises(ConfigError, match="search-space file not found"):
        sp.load_search_space(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="no hyperparameter left to search"):
        sp.search_space_from_dict({"hyperparameters": {name: None for name in sp.KNOWN}})
    with pytest.raises(ConfigError, match="unknown section"):
        sp.search_space_from_dict({"space": {}})


def test_clip_keeps_perturbations_in_range():
    space = sp.default_search_space()
    clipped = space.clip(
        {"train.lr_init": 1.0, "model.dropout_rate": -0.2, "train.kl_co_scale": 0.5, "other": 7}
    )
    assert clipped == {
        "train.lr_init": 3e-2,
        "model.dropout_rate": 0.0,
        "train.kl_co_scale": 0.5,
        "other": 7,
    }


# ------------------------------------------------------------------ member pieces


def test_member_config_sets_hyperparameters_and_hands_lr_to_pbt():
    base = RunConfig().with_overrides(["train.max_minutes=5", "train.seed=3"])
    cfg = member_config(
        base, {"train.lr_init": 2e-3, "model.cd_rate": 0.3, "train.kl_co_scale": 0.1}, seed=7
    )
    assert cfg.train.lr_init == 2e-3 and cfg.model.cd_rate == 0.3 and cfg.train.kl_co_scale == 0.1
    assert cfg.train.lr_decay == 1.0 and cfg.train.max_minutes is None and cfg.train.seed == 7
    assert (
        cfg.train.devices == 1
        and member_config(base.replace(train={"devices": 2}), {}).train.devices == 2
    )
    assert cfg.model.gen_dim == base.model.gen_dim


def test_member_index_and_smoothing():
    assert member_index("ab12c_00003") == 3
    assert 0 <= member_index("weird") < 10_000 and member_index("weird") == member_index("weird")
    assert smooth(math.nan, 10.0, 0.7) == 10.0
    assert smooth(10.0, 20.0, 0.7) == pytest.approx(13.0)
    assert smooth(10.0, math.nan, 0.7) == 10.0


class _FakeTune:
    """The part of ``ray.tune`` that :func:`train_member` calls, recording its reports."""

    def __init__(self, trial_id, checkpoint_dir, keep):
        import contextlib
        import shutil
        import types

        self.reports, self._keep = [], keep
        self.get_context = lambda: types.SimpleNamespace(get_trial_id=lambda: trial_id)
        ckpt = (
            None
            if checkpoint_dir is None
            else types.SimpleNamespace(
                as_directory=lambda: contextlib.nullcontext(str(checkpoint_dir))
            )
        )
        self.get_checkpoint = lambda: ckpt

        def from_directory(folder):  # Ray copies the folder away before it is deleted
            dest = keep / f"ckpt{len(list(keep.iterdir()))}"
            shutil.copytree(folder, dest)
            return dest

        self.Checkpoint = types.SimpleNamespace(from_directory=from_directory)

    def report(self, metrics, checkpoint=None):
        self.reports.append((dict(metrics), checkpoint))


def test_member_copied_from_a_finished_donor_reports_the_epoch_it_holds(
    tmp_path, session, monkeypatch
):
    """A member exploited with the checkpoint of a donor that already reached max_epochs trains
    nothing more but still reports once, at the donor's epoch, naming the donor (the resumed
    sweep otherwise listed it as done at an earlier epoch)."""
    import types

    from nwb_lfads.data import prepare_data
    from nwb_lfads.fit import reader_options
    from nwb_lfads.io.read import read_sessions
    from nwb_lfads.rundir import CheckpointDir
    from nwb_lfads.sweep.member import MemberBundle, train_member

    cfg = RunConfig().with_overrides(["data.align_to=move_onset_time", "train.max_epochs=1", *TINY])
    data = prepare_data(read_sessions([session], **reader_options(cfg.data)), cfg.data)
    space = sp.search_space_from_dict({"pbt": {"perturbation_interval": 1}})
    bundle = MemberBundle(data=data, cfg=cfg, space=space, token="t")
    keep = tmp_path / "kept"
    keep.mkdir()

    def run(trial_id, checkpoint_dir):
        fake = _FakeTune(trial_id, checkpoint_dir, keep)
        monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(tune=fake))
        monkeypatch.setitem(sys.modules, "ray.tune", fake)
        train_member({"train.lr_init": 3e-3}, bundle=bundle)
        return fake.reports

    donor = run("abc_00000", None)
    assert [m["epoch"] for m, _ in donor] == [1] and donor[0][1] is not None
    assert donor[0][0]["exploited_from"] == ""
    copy = run("abc_00002", donor[0][1])
    assert len(copy) == 1
    metrics, checkpoint = copy[0]
    assert metrics["epoch"] == 1 and metrics["exploited_from"] == "abc_00000"
    assert math.isfinite(metrics["valid_recon"]) and metrics["member"] == "abc_00002"
    assert (
        checkpoint is not None
        and json.loads(CheckpointDir(checkpoint).member.read_text())["trial_id"] == "abc_00002"
    )


# ------------------------------------------------------------------ population log


def _rec(trial, epoch, value, donor=""):
    return {
        "trial_id": trial,
        "epoch": epoch,
        "hyperparameters": {"train.lr_init": 1e-3 * epoch},
        "row": {
            "epoch": epoch,
            "valid_recon_smoothed": value,
            "exploited_from": donor,
            "member": trial,
        },
    }


def test_history_exploits_and_lineage():
    records = [
        _rec("a", 1, 5.0),
        _rec("b", 1, 9.0),
        _rec("a", 2, 4.0),
        _rec("b", 2, 8.0),
        _rec("b", 2, 3.9, donor="a"),  # b restarted from a's epoch-1 checkpoint (repeat of epoch 2)
        _rec("a", 3, 3.8),
        _rec("b", 3, 3.5),
    ]
    hist = history(records)
    assert [r["epoch"] for r in hist["b"]] == [1, 2, 3]
    assert hist["b"][1]["row"]["valid_recon_smoothed"] == 3.9  # last record of (b, 2) kept
    assert exploits(hist) == [{"trial_id": "b", "epoch": 2, "donor": "a"}]
    path = [(r["trial_id"], r["epoch"]) for r in lineage(hist, "b")]
    assert path == [("a", 1), ("b", 2), ("b", 3)]
    assert best_of(hist["b"]) == (3.5, 3)
    assert best_of([_rec("c", 1, math.inf)]) == (math.inf, 0)


def test_population_plot_is_a_png(tmp_path):
    hist = history(
        [_rec("a", 1, 5.0), _rec("b", 1, 9.0), _rec("a", 2, 4.0), _rec("b", 2, 4.1, donor="a")]
    )
    path = plot_population(hist, SweepDir(tmp_path).figure("population"))
    assert path == tmp_path / "population.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


# ------------------------------------------------------------------ Ray and the cluster


@pytest.mark.parametrize(
    "address, parsed",
    [
        ("auto", None),
        ("ray://head:10001", ("ray", "head", 10001)),
        ("ray://head", ("ray", "head", 10001)),
        ("10.0.0.5:6380", ("gcs", "10.0.0.5", 6380)),
        ("head", ("gcs", "head", 6379)),
    ],
)
def test_parse_address(address, parsed):
    assert parse_address(address) == parsed


@pytest.mark.parametrize("address", ["ray://", "head:port", "http://head:1", "head:70000"])
def test_parse_address_refuses_malformed(address):
    with pytest.raises(ClusterError, match="--address"):
        parse_address(address)


def test_unreachable_address_fails_fast():
    port = _closed_port()
    with pytest.raises(ClusterError, match=rf"no Ray cluster answers at 127\.0\.0\.1:{port}"):
        check_reachable(f"ray://127.0.0.1:{port}", timeout_s=2.0)


def test_without_ray_sweep_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RayMissingError, match=r'pip install "nwb-lfads\[sweep\]"'):
        import_ray()
    result = CliRunner().invoke(
        main, ["sweep", str(tmp_path / "x.nwb"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert 'pip install "nwb-lfads[sweep]"' in result.output
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ sweep: errors before training


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from nwb_lfads.synthetic import simulate

    folder = tmp_path_factory.mktemp("sweep_sim")
    return simulate(folder, sessions=1, n_conditions=4, trials_per_condition=5, n_units=10)[0]


def test_population_below_two_is_refused(tmp_path, session):
    result = CliRunner().invoke(
        main, ["sweep", str(session), "--out", str(tmp_path / "out"), "--population", "1"]
    )
    assert result.exit_code == 2
    assert "needs at least 2 members" in result.output
    assert not (tmp_path / "out").exists()


def test_unknown_hyperparameter_in_search_space_file_exit_2(tmp_path, session):
    space = tmp_path / "space.yaml"
    space.write_text("hyperparameters:\n  train.momentum: {low: 0.1, high: 0.9}\n")
    result = CliRunner().invoke(
        main, ["sweep", str(session), "--out", str(tmp_path / "out"), "--search-space", str(space)]
    )
    assert result.exit_code == 2
    assert (
        "unknown hyperparameter 'train.momentum'" in result.output
        and "model.dropout_rate" in result.output
    )
    assert not (tmp_path / "out").exists()


def test_unreachable_address_leaves_nothing_running(tmp_path, session):
    import ray

    port = _closed_port()
    result = CliRunner().invoke(
        main,
        ["sweep", str(session), "--out", str(tmp_path / "out"), "--address", f"127.0.0.1:{port}"],
    )
    assert result.exit_code == 2, result.output
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in result.output
    assert not ray.is_initialized()
    assert not (tmp_path / "out" / "ray").exists()


def test_run_dir_checks(tmp_path, session):
    from nwb_lfads.sweep import sweep

    with pytest.raises(RunDirError, match="no sweep to resume here"):
        sweep([session], tmp_path / "new", resume=True)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "sweep.yaml").write_text(
        yaml.safe_dump(
            {
                "sources": [str(session)],
                "population": 4,
                "config": RunConfig().to_dict(),
                "search_space": sp.default_search_space().to_dict(),
            }
        )
    )
    with pytest.raises(RunDirError, match="already holds a sweep"):
        sweep([session], taken)
    with pytest.raises(ConfigError, match=r"cannot change --population \(was 4\)"):
        sweep([session], taken, resume=True, population=6)


# ------------------------------------------------------------------ sweep: a real population


@pytest.mark.slow
def test_population_exploits_resumes_and_best_is_a_run_dir(tmp_path, session):
    """4 members, 3 one-epoch generations on 2 local CPUs, interrupted (SIGINT, as Ctrl-C)
    after the second generation and resumed: PBT copies a member at least once (the copy
    reports the donor whose checkpoint it was restored from), every member ends at epoch 3,
    and best/ is a RUN_DIR that infer accepts."""
    import os
    import signal

    from nwb_lfads.sweep import sweep

    out = tmp_path / "sweep"
    space = tmp_path / "space.yaml"
    space.write_text("pbt:\n  perturbation_interval: 1\n")
    lines = []

    def echo(line):  # runs in the driver's main thread, where Ray Tune handles SIGINT
        lines.append(line)
        if line.startswith("generation 2 "):
            os.kill(os.getpid(), signal.SIGINT)

    first = sweep(
        [session],
        out,
        overrides=["data.align_to=move_onset_time", "train.max_epochs=3", *TINY],
        search_space=space,
        population=4,
        workers=2,
        echo=echo,
    )
    assert first.interrupted and max(int(r["epochs"]) for r in first.leaderboard) < 3
    assert {r["status"] for r in first.leaderboard} == {"interrupted"}
    assert (out / "best" / "checkpoint" / "best_params.npz").exists()  # the best so far

    result = CliRunner().invoke(main, ["sweep", str(session), "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert "exploits" in result.output

    with open(out / "leaderboard.csv", newline="") as f:
        board = list(csv.DictReader(f))
    assert len(board) == 4 and [int(r["rank"]) for r in board] == [1, 2, 3, 4]
    losses = [float(r["best_valid_recon_smoothed"]) for r in board]
    assert losses == sorted(losses) and all(math.isfinite(v) for v in losses)
    lr = sp.default_search_space()["train.lr_init"]
    for r in board:
        assert r["status"] == "done" and int(r["epochs"]) == 3
        assert math.isfinite(float(r["valid_bps"])) and math.isfinite(
            float(r["r2"])
        )  # simulated: truth known
        assert lr.low <= float(r["train.lr_init"]) <= lr.high

    records = [json.loads(line) for line in (out / "population.jsonl").read_text().splitlines()]
    members = {r["trial_id"] for r in records}
    copies = [r for r in records if r["row"]["exploited_from"]]
    assert len(members) == 4 and copies, "no member was restored from another's checkpoint"
    for r in copies:
        assert r["row"]["exploited_from"] in members and r["row"]["exploited_from"] != r["trial_id"]
    assert sum(int(r["times_copied"]) for r in board) == len(exploits(history(records)))
    assert (out / "population.png").stat().st_size > 5000

    best = out / "best"
    for name in (
        "config.yaml",
        "metrics.csv",
        "summary.json",
        "sim_session-0.lfads.nwb",
        "learning_curves.png",
        "checkpoint/state.npz",
        "checkpoint/best_params.npz",
        "checkpoint/config.yaml",
        "checkpoint/sessions.json",
    ):
        assert (best / name).exists(), name
    cfg = RunConfig.from_yaml(best / "config.yaml")
    assert cfg.train.lr_init == pytest.approx(float(board[0]["train.lr_init"]), rel=1e-5)
    assert cfg.model.gen_dim == 8
    with open(best / "metrics.csv", newline="") as f:
        epochs = [int(float(r["epoch"])) for r in csv.DictReader(f)]
    assert epochs == list(
        range(1, int(board[0]["best_epoch"]) + 1)
    )  # the winner's lineage, one row per epoch

    from nwb_lfads.train.checkpoint import load_run

    run_cfg, params, sessions = load_run(best)
    assert [s.session_id for s in sessions] == ["sim-0"] and run_cfg == cfg
    inferred = CliRunner().invoke(
        main, ["infer", str(best), str(session), "--out", str(tmp_path / "inferred")]
    )
    assert inferred.exit_code == 0, inferred.output
    assert (tmp_path / "inferred" / "sim_session-0.lfads.nwb").exists()
