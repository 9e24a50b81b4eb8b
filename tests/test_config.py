import dataclasses

import pytest

from nwb_lfads.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from nwb_lfads.errors import ConfigError


def test_yaml_round_trip_keeps_every_field(tmp_path):
    cfg = RunConfig().replace(
        data={"window": [-0.25, 0.45], "align_to": "move_onset_time"},
        model={"gen_dim": 32},
        train={"max_minutes": 2.5},
    )
    path = tmp_path / "config.yaml"
    cfg.save(path)
    back = RunConfig.from_yaml(path)
    assert back == cfg
    assert back.data.window == (-0.25, 0.45)
    assert isinstance(back.model, ModelConfig) and back.model.gen_dim == 32


def test_overrides_parse_values_with_safe_load():
    cfg = RunConfig().with_overrides(
        [
            "model.co_dim=0",
            "train.lr_init=1e-3",
            "gen_dim=48",
            "data.window=[-0.1, 0.2]",
            "train.train_readin=false",
        ]
    )
    assert cfg.model.co_dim == 0 and cfg.model.gen_dim == 48
    assert cfg.train.lr_init == pytest.approx(1e-3)
    assert cfg.data.window == (-0.1, 0.2)
    assert cfg.train.train_readin is False


@pytest.mark.parametrize(
    "item, match",
    [
        ("model.nope=1", "has no field 'nope'"),
        ("nosection.x=1", "unknown section"),
        ("gen_dim", "expected KEY=VALUE"),
        ("model.gen_dim=abc", "expected an integer"),
        ("train.lr_init=[1]", "expected a number"),
    ],
)
def test_bad_overrides_name_the_key(item, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig().with_overrides([item])


def test_unknown_yaml_field_is_rejected(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  gen_dimm: 3\n")
    with pytest.raises(ConfigError, match="gen_dimm"):
        RunConfig.from_yaml(path)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DataConfig().bin_size = 0.02  # type: ignore[misc]
    assert TrainConfig().batch_size > 0


def test_choices_are_str_enums_that_round_trip_and_name_the_alternatives(tmp_path):
    from nwb_lfads.config import Likelihood, ReadinMethod, SessionSampling

    cfg = RunConfig().with_overrides(
        ["model.likelihood=gaussian", "readin_init=pcr", "train.session_sampling=balanced"]
    )
    assert cfg.model.likelihood is Likelihood.GAUSSIAN and cfg.model.likelihood == "gaussian"
    assert cfg.model.readin_init is ReadinMethod.PCR
    assert cfg.train.session_sampling is SessionSampling.BALANCED
    assert "likelihood: gaussian" in cfg.to_yaml()  # plain text in the YAML, not a Python tag
    assert RunConfig.from_yaml(cfg.to_yaml()) == cfg
    assert ModelConfig(likelihood="gaussian").likelihood is Likelihood.GAUSSIAN
    with pytest.raises(ConfigError, match=r"train.session_sampling='random': expected propor"):
        RunConfig().with_overrides(["train.session_sampling=random"])


@pytest.mark.parametrize(
    "section, fields, match",
    [
        (TrainConfig, dict(ema_decay=1.0), r"train.ema_decay=1.0: expected a value in \[0, 1\)"),
        (TrainConfig, dict(batch_size=0), r"train.batch_size=0: expected a value >= 1"),
        (TrainConfig, dict(lr_decay=1.5), r"train.lr_decay=1.5: expected a factor in \(0, 1\]"),
        (TrainConfig, dict(lr_init=-0.1), r"train.lr_init=-0.1: expected a number > 0"),
        (TrainConfig, dict(max_minutes=0), r"train.max_minutes=0: expected a number > 0"),
        (ModelConfig, dict(gen_dim=0), r"model.gen_dim=0: expected a value >= 1"),
        (ModelConfig, dict(gen_dim=2.5), r"model.gen_dim=2.5: expected a whole number"),
        (ModelConfig, dict(dropout_rate=1.0), r"model.dropout_rate=1.0: expected a value in"),
        (ModelConfig, dict(co_dim=2, con_dim=0), r"model.co_dim=2 .* needs a controller"),
        (DataConfig, dict(overlap=2.0), r"data.overlap=2.0: expected a value in \[0, window"),
    ],
)
def test_every_value_is_checked_when_the_config_is_built(section, fields, match):
    with pytest.raises(ConfigError, match=match):
        section(**fields)
    (name, value), *_ = fields.items()
    key = f"{section.__name__[:-6].lower()}.{name}"
    if len(fields) == 1:  # the same value through --set is refused, naming the key
        with pytest.raises(ConfigError, match=key):
            RunConfig().with_overrides([f"{key}={value}"])


def test_checks_that_need_the_data():
    from nwb_lfads.config import check_against_data

    check_against_data(ModelConfig(jitter_width=4), n_bins=10, n_sessions=1)
    with pytest.raises(ConfigError, match="1 to 4 bins"):
        check_against_data(ModelConfig(jitter_width=5), n_bins=10, n_sessions=1)
    with pytest.raises(ConfigError, match="readin_init=pcr: this model has no read-in"):
        check_against_data(ModelConfig(readin_init="pcr"), n_bins=10, n_sessions=1)
    check_against_data(ModelConfig(readin_init="pcr"), n_bins=10, n_sessions=2)


def test_trial_selector_is_one_rule_for_text_numbers_and_bytes():
    import numpy as np

    from nwb_lfads.selection import TrialSelector, values_match

    sel = TrialSelector.parse(" condition_id = 3 ")
    assert (sel.column, sel.value, str(sel)) == ("condition_id", "3", "condition_id=3")
    np.testing.assert_array_equal(
        sel.matches(np.array([3, 3.0, 4, 30])), [True, True, False, False]
    )
    np.testing.assert_array_equal(sel.matches(["3", "3.0", b"3"]), [True, False, True])
    split = TrialSelector.parse("split=val")
    np.testing.assert_array_equal(
        split.matches(np.array(["train", "val", "test"], dtype=object)), [False, True, False]
    )
    np.testing.assert_array_equal(split.matches([b"val", b"train"]), [True, False])
    assert not TrialSelector.parse("flag=1").matches([True]).any()  # booleans are not numbers
    np.testing.assert_array_equal(values_match([1, 2, 3], [1, "3"]), [True, False, True])
    for bad in ("split", "=val", "split=", ""):
        with pytest.raises(ConfigError, match="--trials=.*expected COLUMN=VALUE"):
            TrialSelector.parse(bad, option="--trials")
    assert DataConfig(eval_trials="split=val").eval_selector == split


def test_automatic_settings_resolve_by_the_number_of_sessions():
    """``train.lr_init`` None and ``model.readin_init`` auto become concrete for the data:
    one session 0.02 and random read-ins; several Poisson sessions 0.01 and PCR; several
    Gaussian sessions 0.01 and random; explicit values are kept; the result round-trips YAML."""
    from nwb_lfads.config import (
        LR_ONE_SESSION,
        LR_STITCHED,
        ReadinMethod,
        RunConfig,
        resolve_for_data,
    )

    cfg = RunConfig()
    assert cfg.train.lr_init is None and cfg.model.readin_init is ReadinMethod.AUTO
    one, several = resolve_for_data(cfg, 1), resolve_for_data(cfg, 3)
    assert (one.train.lr_init, one.model.readin_init) == (LR_ONE_SESSION, ReadinMethod.RANDOM)
    assert (several.train.lr_init, several.model.readin_init) == (LR_STITCHED, ReadinMethod.PCR)
    assert LR_STITCHED < LR_ONE_SESSION
    gaussian = resolve_for_data(cfg.with_overrides(["model.likelihood=gaussian"]), 3)
    assert gaussian.model.readin_init is ReadinMethod.RANDOM
    fixed = cfg.with_overrides(["train.lr_init=0.003", "model.readin_init=random"])
    kept = resolve_for_data(fixed, 3)
    assert (kept.train.lr_init, kept.model.readin_init) == (0.003, ReadinMethod.RANDOM)
    assert RunConfig.from_yaml(several.to_yaml()) == several
    assert RunConfig.from_yaml(cfg.to_yaml()) == cfg
