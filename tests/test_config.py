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
