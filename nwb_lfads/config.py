"""Configuration: frozen dataclasses that round-trip through YAML.

``RunConfig`` groups the three parts; each stage is handed only its own part
(the reader ``DataConfig``, the model ``ModelConfig``, the loop ``TrainConfig``).
Overrides use dotted keys (``--set model.gen_dim=64``); values are parsed with
``yaml.safe_load`` so ``1e-3``, ``true`` and ``[-0.25, 0.45]`` mean what they look like.
Nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from .errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """How sessions are read and split.

    Attributes:
        bin_size: bin width in seconds.
        align_to: trials-table column to align on; ``None`` = continuous windows.
        window: (start, stop) in seconds around the alignment event; ``None`` = the reader's
            default (the trial's own span for aligned mode).
        window_length: continuous mode: window length in seconds.
        overlap: continuous mode: overlap between consecutive windows in seconds.
        valid_fraction: fraction of each session's trials held out for validation.
        heldout_units: boolean units-table column of units never given to the encoders.
        eval_trials: ``"COLUMN=VALUE"`` selecting trials whose held-out units are unobserved.
        split_seed: seed of the train/validation split.
    """

    bin_size: float = 0.01
    align_to: str | None = None
    window: tuple[float, float] | None = None
    window_length: float = 1.0
    overlap: float = 0.2
    valid_fraction: float = 0.2
    heldout_units: str | None = None
    eval_trials: str | None = None
    split_seed: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """LFADS architecture (names as in the TF LFADS code and the papers).

    Dimensions: ``readin_dim`` (0 = no read-in for one session; several sessions always get
    one, of this size or ``fac_dim`` when 0), ``ic_enc_dim`` and ``ci_enc_dim`` (encoder GRU
    sizes per direction), ``ic_dim`` (initial condition), ``gen_dim`` (generator),
    ``con_dim`` (controller), ``co_dim`` (inferred inputs; 0 = autonomous), ``fac_dim``.
    ``readin_init``: ``"random"`` (default) or ``"pcr"``, the principal-component-regression
    start of the read-in and read-out (:func:`nwb_lfads.stitching.readin_init_from_data`; needs
    a read-in: several sessions or ``readin_dim > 0``).

    ``fac_dim = 50`` is TF LFADS's default (``factors_dim``). 20 factors (TF LFADS's chaotic-RNN
    example) are a linear bottleneck that caps the chaotic-RNN benchmark near R^2 0.81; with the
    learning rate of 0.01, 50 factors reach 0.819 at 10 CPU-minutes where 20 reached 0.761
    (0.831 with the parameter average, ``TrainConfig.ema_decay``). ``gen_dim = 150``: a
    generator of 150 instead of 100 units learns more per epoch and levels off higher (chaotic-RNN
    benchmark 0.8506 within 10 CPU-minutes with dropout 0.05). TF LFADS's 200 scored 0.849 there but
    started badly on the three small stitched sessions of ``nwb-lfads demo`` at ``lr_init``
    0.02 (R^2 0.76-0.81 against 0.81-0.85 for 100 or 150 units; DESIGN_NOTES.md,
    "Chaotic-RNN recovery").

    ``dropout_rate = 0.1``, twice TF LFADS's default (``keep_prob`` 0.95): dropout on the data,
    the encodings and the generator state. It learns more slowly per epoch but overfits the
    800 training trials of the chaotic-RNN benchmark later: within 10 CPU-minutes 0.8578 /
    0.8554 / 0.8561 (training seeds 0 / 1 / 2) against 0.8506 / 0.8475 (seeds 0 / 1) with 0.05,
    whose R^2 peaked near epoch 300 and then fell; also ``nwb-lfads demo`` R^2 0.864 / 0.857 /
    0.853 (0.814 / 0.850 / 0.844) and MC_Maze_Small co-bps 0.195 (0.185). It costs ~0.02 on
    conditions training never saw (0.704 / 0.722 against 0.722 / 0.749, seeds 0 / 1;
    DESIGN_NOTES.md, "Chaotic-RNN recovery").

    ``jitter_width``: temporal spike jitter (TF LFADS's ``temporal_spike_jitter_width``), a data
    augmentation against fitting the exact spike times: in training passes every bin's count
    moves by a uniform random shift of up to this many bins, for the encoders' input and the
    likelihood's target alike (:func:`nwb_lfads.model.noise.jitter_in_time`); validation and
    inference see the recorded spikes. 0 = off. Poisson likelihood only, not with ``sv_rate``.
    """

    readin_dim: int = 0
    ic_enc_dim: int = 64
    ci_enc_dim: int = 64
    ic_dim: int = 64
    gen_dim: int = 150
    con_dim: int = 64
    co_dim: int = 4
    fac_dim: int = 50
    ci_lag: int = 1
    ic_prior_var: float = 0.1
    ic_post_var_min: float = 1e-4
    co_prior_tau: float = 10.0
    co_prior_var: float = 0.1
    cell_clip: float = 5.0
    dropout_rate: float = 0.1
    cd_rate: float = 0.0
    sv_rate: float = 0.0
    jitter_width: int = 0
    likelihood: str = "poisson"
    readin_init: str = "random"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, regularisation ramps, stopping and inference sampling.

    ``devices``: JAX devices (per process) that share each batch (data parallelism over the
    batch axis, :mod:`nwb_lfads.train.parallel`); ``batch_size`` must divide by it. 0 (the
    default) = automatic: on CPU every CPU device that divides the batch (the command line splits
    the host into one device per core, :mod:`nwb_lfads.train.host_devices`), on GPU one device.

    ``lr_init = 0.02``, twice TF LFADS's default (``learning_rate_init``), is decayed by
    ``lr_decay`` after ``lr_patience`` epochs without a better smoothed validation loss. TF
    LFADS uses the same factor and count (0.95, 6) with another test: it decays when an
    epoch's training cost exceeds each of the previous six. With the parameter average
    (``ema_decay``) 0.02 learns faster than 0.01 without losing the end (chaotic-RNN benchmark,
    150-unit generator: 0.846 against 0.842 at 10 CPU-minutes).

    ``ema_decay``: after every epoch the trainer updates an exponential moving average of the
    parameters, ``avg = ema_decay * avg + (1 - ema_decay) * params`` (Polyak averaging, over
    about ``1 / (1 - ema_decay)`` epochs); the average is what validation scores, what the best
    checkpoint keeps and what inference uses. 0 = the optimizer's own parameters. 0.9 raised the
    chaotic-RNN benchmark from 0.819 to 0.831 at 10 CPU-minutes (generator 100); the default 0.95
    (about 20 epochs) is 0.002 ahead of 0.9 at equal epochs for the generator of 150
    (DESIGN_NOTES.md, "Chaotic-RNN recovery").
    """

    batch_size: int = 128
    lr_init: float = 2e-2
    lr_decay: float = 0.95
    lr_patience: int = 6
    lr_min: float = 1e-5
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.0
    max_grad_norm: float = 200.0
    kl_ic_scale: float = 1.0
    kl_co_scale: float = 1.0
    kl_start_epoch: int = 0
    kl_increase_epochs: int = 50
    l2_gen_scale: float = 2000.0
    l2_con_scale: float = 0.0
    l2_start_epoch: int = 0
    l2_increase_epochs: int = 50
    max_epochs: int = 500
    max_minutes: float | None = None
    early_stop_patience: int = 50
    steps_per_call: int = 0
    devices: int = 0
    seed: int = 0
    nan_patience: int = 5
    n_samples: int = 50
    ema_decay: float = 0.95
    session_sampling: str = "proportional"
    train_readin: bool = True


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rerun a fit; saved as ``RUN_DIR/config.yaml``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # -- YAML ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {f.name: _plain(dataclasses.asdict(getattr(self, f.name))) for f in fields(self)}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict | None, *, source: str = "config") -> RunConfig:
        d = d or {}
        if not isinstance(d, dict):
            raise ConfigError(
                f"{source}: expected a mapping with sections data/model/train, "
                f"found {type(d).__name__}."
            )
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(
                f"{source}: unknown section(s) {sorted(unknown)}; expected data, model, train."
            )
        parts = {}
        for f in fields(cls):
            sub_cls = _SECTIONS[f.name]
            parts[f.name] = _build(sub_cls, d.get(f.name) or {}, f"{source}: {f.name}")
        return cls(**parts)

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> RunConfig:
        path = (
            Path(text_or_path)
            if not str(text_or_path).lstrip().startswith(("{", "data", "model", "train"))
            else None
        )
        if path is not None and path.exists():
            try:
                d = yaml.safe_load(path.read_text())
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML ({exc}).") from None
            return cls.from_dict(d, source=str(path))
        if path is not None and path.suffix in (".yaml", ".yml"):
            raise ConfigError(f"{path}: config file not found.")
        return cls.from_dict(yaml.safe_load(str(text_or_path)))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())

    # -- overrides -------------------------------------------------------------------------
    def replace(self, **sections) -> RunConfig:
        """``cfg.replace(train={"max_epochs": 5})``: replace fields of sections."""
        parts = {}
        for name, changes in sections.items():
            if name not in _SECTIONS:
                raise ConfigError(f"unknown config section {name!r}; expected data, model, train.")
            merged = {**dataclasses.asdict(getattr(self, name)), **changes}
            parts[name] = _build(_SECTIONS[name], merged, name)
        return dataclasses.replace(self, **parts)

    def with_overrides(self, overrides: list[str] | tuple[str, ...]) -> RunConfig:
        """Apply ``KEY=VALUE`` strings, KEY dotted (``model.co_dim``) or a unique field name."""
        sections: dict[str, dict] = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. model.gen_dim=64.")
            key, _, raw = item.partition("=")
            section, name = _resolve_key(key.strip())
            try:
                value = yaml.safe_load(raw) if raw.strip() else None
            except yaml.YAMLError:
                value = raw
            sections.setdefault(section, {})[name] = value
        return self.replace(**sections)


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def _resolve_key(key: str) -> tuple[str, str]:
    if "." in key:
        section, _, name = key.partition(".")
        if section not in _SECTIONS:
            raise ConfigError(
                f"--set {key}: unknown section {section!r}; expected data, model, train."
            )
        if name not in {f.name for f in fields(_SECTIONS[section])}:
            raise ConfigError(
                f"--set {key}: {section} has no field {name!r}; it has "
                f"{', '.join(f.name for f in fields(_SECTIONS[section]))}."
            )
        return section, name
    owners = [s for s, c in _SECTIONS.items() if key in {f.name for f in fields(c)}]
    if len(owners) != 1:
        raise ConfigError(f"--set {key}: unknown key; use SECTION.FIELD, e.g. model.gen_dim=64.")
    return owners[0], key


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, found {values!r}.")
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {sorted(unknown)}; known: {', '.join(known)}."
        )
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in values.items():
        out[name] = _coerce(value, hints[name], f"{where}.{name}")
    return cls(**out)


def _coerce(value, hint, where: str):
    """Check and convert a YAML value to the field's annotated type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}.")
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, found {value!r}.")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, found {value!r}.")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, found {value!r}.")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads '1e-3' (no dot) as text
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, found {value!r}.")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, found {value!r}.")
        return value
    return value
