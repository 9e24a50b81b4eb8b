"""Configuration: frozen dataclasses that round-trip through YAML, and every value check.

``RunConfig`` groups the three parts; each stage is handed only its own part (the reader
``DataConfig``, the model ``ModelConfig``, the loop ``TrainConfig``). Overrides use dotted keys
(``--set model.gen_dim=64``); values are parsed with ``yaml.safe_load`` so ``1e-3``, ``true``
and ``[-0.25, 0.45]`` mean what they look like. Nothing is ever ``eval``-ed.

Every value is checked when a config is built (``__post_init__``), so a bad value is a
:class:`~nwb_lfads.errors.ConfigError` naming the field before any data is read. The checks that
need the data (a jitter width against the trial length, a PCR read-in against the number of
sessions) are :func:`check_against_data`, called once the trials are binned. Choices are
``enum.StrEnum`` (carried into click choices by the CLI). ``data.eval_trials`` is checked as
a :class:`~nwb_lfads.selection.TrialSelector`.

This module imports nothing of the package but :mod:`nwb_lfads.errors` and
:mod:`nwb_lfads.selection`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from .errors import ConfigError
from .selection import TrialSelector


class Likelihood(enum.StrEnum):
    """Observation model of the counts (``model.likelihood``)."""

    POISSON = "poisson"
    GAUSSIAN = "gaussian"


LR_ONE_SESSION = 2e-2  # train.lr_init of a single-session fit (docs/DESIGN.md, "Defaults")
LR_STITCHED = 1e-2  # train.lr_init of a stitched fit (docs/DESIGN.md, "Stitching")


class ReadinMethod(enum.StrEnum):
    """Start of the read-in/read-out (``model.readin_init``): random, principal-component
    regression on the sessions' smoothed rates (:func:`nwb_lfads.stitching.readin_init_from_data`),
    or ``auto``: ``pcr`` for several sessions with the Poisson likelihood, ``random`` otherwise
    (:func:`resolve_for_data`)."""

    AUTO = "auto"
    RANDOM = "random"
    PCR = "pcr"


class SessionSampling(enum.StrEnum):
    """How batches draw trials of several sessions (``train.session_sampling``): in proportion
    to each session's training trials, or each session equally often."""

    PROPORTIONAL = "proportional"
    BALANCED = "balanced"


class DataPlacement(enum.StrEnum):
    """Where the training set lives (``train.data_placement``): on every device when it fits
    with the step's memory, else streamed from the host (``auto``); always on the device
    (``device``); always streamed, one compiled call's trials at a time (``stream``)."""

    AUTO = "auto"
    DEVICE = "device"
    STREAM = "stream"


class SimulationKind(enum.StrEnum):
    """Latent system of ``nwb-lfads simulate``: the LFADS chaotic RNN, the chaotic RNN driven by
    a known input pulse per trial (TF LFADS's "chaotic RNN with inputs"), a Lorenz attractor,
    or two-photon imaging of a chaotic RNN (dF/F of a calcium indicator,
    :mod:`nwb_lfads.synthetic_calcium`)."""

    CHAOTIC = "chaotic"
    CHAOTIC_INPUTS = "chaotic-inputs"
    LORENZ = "lorenz"
    CALCIUM = "calcium"


def choices(kind: type[enum.StrEnum]) -> list[str]:
    """The values of a choice enum, in order (for click and error messages)."""
    return [m.value for m in kind]


# ------------------------------------------------------------------------- sections
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
        eval_trials: ``"COLUMN=VALUE"`` selecting trials whose held-out units are unobserved
            (:class:`TrialSelector`).
        split_seed: seed of the train/validation split.
        external_inputs: names of the sessions' known inputs fed to the generator and the
            controller at every bin (``--external-input``; :mod:`nwb_lfads.io.external`): a
            TimeSeries, a trials-table event column (``*_time``, a unit pulse in the bin of the
            event) or a numeric trials-table column (constant over the trial). Empty = none.
        forward: seconds of forward prediction (``--forward``; NLB uses 0.2): the reader also
            bins this time after each aligned window; the encoders never see those bins, the
            generator runs on through them, the loss covers them (not on ``eval_trials``,
            where they are what is predicted) and their rates are written. A whole number of
            bins; 0 = none; trial-aligned mode only.
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
    external_inputs: tuple[str, ...] = ()
    forward: float = 0.0

    def __post_init__(self):
        _positive("data.bin_size", self.bin_size)
        if not (_real("data.forward", self.forward) >= 0 and math.isfinite(self.forward)):
            raise ConfigError(
                f"data.forward={self.forward!r}: expected seconds >= 0 of forward prediction "
                f"after each window (e.g. 0.2), or 0 for none."
            )
        if self.forward > 0 and self.align_to is None:
            raise ConfigError(
                f"data.forward={self.forward:g} needs trial-aligned windows: forward prediction "
                f"continues each trial's window, and continuous windows have no trials. Set "
                f"data.align_to (--align-to COLUMN) or data.forward=0."
            )
        names = self.external_inputs
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise ConfigError(
                f"data.external_inputs={names!r}: expected a list of names, e.g. [pulse_time]."
            )
        if any(not isinstance(n, str) or not n.strip() for n in names):
            raise ConfigError(
                f"data.external_inputs={list(names)!r}: every entry must be a non-empty name."
            )
        if len(set(names)) != len(names):
            raise ConfigError(
                f"data.external_inputs={list(names)!r}: a name is given twice; give each once."
            )
        object.__setattr__(self, "external_inputs", tuple(names))
        if self.window is not None and not self.window[0] < self.window[1]:
            raise ConfigError(
                f"data.window={list(self.window)}: expected [START, STOP] with START < STOP "
                f"(seconds around the alignment event), e.g. [-0.25, 0.45]."
            )
        _positive("data.window_length", self.window_length)
        if not 0.0 <= self.overlap < self.window_length:
            raise ConfigError(
                f"data.overlap={self.overlap}: expected a value in [0, window_length="
                f"{self.window_length}) seconds."
            )
        _in_unit_interval("data.valid_fraction", self.valid_fraction)
        if self.eval_trials is not None:
            TrialSelector.parse(self.eval_trials)

    @property
    def eval_selector(self) -> TrialSelector | None:
        """``eval_trials`` parsed, or None."""
        return None if self.eval_trials is None else TrialSelector.parse(self.eval_trials)


@dataclass(frozen=True)
class ModelConfig:
    """LFADS architecture (names as in the TF LFADS code and the papers).

    Dimensions: ``readin_dim`` (0 = no read-in for one session; several sessions always get
    one, of this size or ``fac_dim`` when 0), ``ic_enc_dim`` and ``ci_enc_dim`` (encoder GRU
    sizes per direction), ``ic_dim`` (initial condition), ``gen_dim`` (generator),
    ``con_dim`` (controller), ``co_dim`` (inferred inputs; 0 = autonomous), ``fac_dim``.
    ``ci_lag``: bins by which the controller's encodings lag the data.

    Priors and clipping: ``ic_prior_var`` (initial variance of the learnable Gaussian prior of
    the initial condition), ``ic_post_var_min`` (floor of its posterior variance),
    ``co_prior_tau`` (bins) and ``co_prior_var`` (the AR(1) prior of the inferred inputs, both
    learnable), ``cell_clip`` (GRU state clip).

    Regularisers: ``dropout_rate`` (on the data, the encodings and the generator state),
    ``cd_rate`` (coordinated dropout: the fraction of (bin, unit) entries hidden from the
    encoders and scored only there), ``sv_rate`` (sample validation: the fraction of entries
    never trained on and scored in validation), ``jitter_width`` (temporal spike jitter, TF
    LFADS's ``temporal_spike_jitter_width``: in training passes every bin's count moves by a
    uniform random shift of up to this many bins, for the encoders' input and the likelihood's
    target alike; validation and inference see the recorded spikes; 0 = off; Poisson only, not
    with ``sv_rate``).

    ``likelihood``: :class:`Likelihood`. ``readin_init``: :class:`ReadinMethod` (``auto``: PCR
    for a stitched Poisson fit, random otherwise; ``pcr`` needs a read-in: several sessions or
    ``readin_dim > 0``).

    The defaults and the measurements behind them: docs/DESIGN.md, "Defaults".
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
    likelihood: Likelihood = Likelihood.POISSON
    readin_init: ReadinMethod = ReadinMethod.AUTO

    def __post_init__(self):
        _set_choice(self, "model", "likelihood", Likelihood)
        _set_choice(self, "model", "readin_init", ReadinMethod)
        for name in ("ic_enc_dim", "ic_dim", "gen_dim", "fac_dim"):
            _at_least(f"model.{name}", getattr(self, name), 1)
        for name in ("readin_dim", "ci_enc_dim", "con_dim", "co_dim", "ci_lag", "jitter_width"):
            _at_least(f"model.{name}", getattr(self, name), 0)
        if self.co_dim > 0 and (self.con_dim < 1 or self.ci_enc_dim < 1):
            raise ConfigError(
                f"model.co_dim={self.co_dim} (inferred inputs) needs a controller: set "
                f"model.con_dim and model.ci_enc_dim >= 1, or model.co_dim=0."
            )
        for name in ("ic_prior_var", "ic_post_var_min", "co_prior_tau", "co_prior_var"):
            _positive(f"model.{name}", getattr(self, name))
        _positive("model.cell_clip", self.cell_clip)
        for name in ("dropout_rate", "cd_rate", "sv_rate"):
            _in_unit_interval(f"model.{name}", getattr(self, name))
        if self.jitter_width and self.likelihood != Likelihood.POISSON:
            raise ConfigError(
                f"model.jitter_width={self.jitter_width} moves spike counts in time and needs "
                f"model.likelihood=poisson (found {self.likelihood.value!r}); set "
                f"model.jitter_width=0."
            )
        if self.jitter_width and self.sv_rate > 0:
            raise ConfigError(
                f"model.jitter_width={self.jitter_width} with model.sv_rate={self.sv_rate}: "
                f"jitter would move spikes out of the bins held back for sample validation; "
                f"set one of them to 0."
            )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, regularisation ramps, stopping and inference sampling.

    Optimizer (:func:`nwb_lfads.train.optimizer.make_optimizer`): global-norm clipping at
    ``max_grad_norm``, Adam (``adam_epsilon``; AdamW with ``weight_decay > 0``) at a learning
    rate starting at ``lr_init`` (``None``, the default: :data:`LR_ONE_SESSION` for one session,
    :data:`LR_STITCHED` for several, see :func:`resolve_for_data`), multiplied by ``lr_decay`` after ``lr_patience`` epochs
    without a better smoothed validation loss, never below ``lr_min``. Training stops after
    ``max_epochs``, ``max_minutes`` or ``early_stop_patience`` epochs without improvement
    (counted once the KL and L2 ramps are complete).

    Loss weights: ``kl_ic_scale``, ``kl_co_scale``, ``l2_gen_scale``, ``l2_con_scale``; the KL
    and L2 weights ramp linearly from 0 to 1 over ``*_increase_epochs`` after
    ``*_start_epoch``.

    ``devices``: JAX devices (per process) that share each batch (data parallelism over the
    batch axis, :mod:`nwb_lfads.train.parallel`); ``batch_size`` must divide by it. 0 (the
    default) = automatic: on CPU every CPU device that divides the batch (the command line splits
    the host into one device per core, :mod:`nwb_lfads.train.host_devices`), on GPU one device.
    ``steps_per_call``: optimizer steps per compiled call (0 = an epoch, at most 50).

    ``ema_decay``: after every epoch the parameters' exponential moving average is updated,
    ``avg = ema_decay * avg + (1 - ema_decay) * params`` (Polyak averaging over about
    ``1 / (1 - ema_decay)`` epochs); the average is what validation scores, what the best
    checkpoint keeps and what inference uses. 0 = the optimizer's own parameters.

    ``nan_patience``: compiled calls in a row with a skipped non-finite step before the last
    good state is restored at half the learning rate. ``n_samples``: posterior samples averaged
    at inference. ``session_sampling``: :class:`SessionSampling`. ``train_readin``: false
    freezes the read-in. ``data_placement``: :class:`DataPlacement`
    (:mod:`nwb_lfads.train.memory`).

    The defaults and the measurements behind them: docs/DESIGN.md, "Defaults".
    """

    batch_size: int = 128
    lr_init: float | None = None
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
    session_sampling: SessionSampling = SessionSampling.PROPORTIONAL
    train_readin: bool = True
    data_placement: DataPlacement = DataPlacement.AUTO

    def __post_init__(self):
        _set_choice(self, "train", "session_sampling", SessionSampling)
        _set_choice(self, "train", "data_placement", DataPlacement)
        for name in ("batch_size", "n_samples", "nan_patience"):
            _at_least(f"train.{name}", getattr(self, name), 1)
        for name in (
            "max_epochs",
            "kl_start_epoch",
            "kl_increase_epochs",
            "l2_start_epoch",
            "l2_increase_epochs",
            "lr_patience",
            "early_stop_patience",
            "steps_per_call",
            "seed",
        ):
            _at_least(f"train.{name}", getattr(self, name), 0)
        if isinstance(self.devices, bool) or not isinstance(self.devices, int) or self.devices < 0:
            raise ConfigError(
                f"train.devices={self.devices!r}: expected a whole number of devices, 1 or more "
                f"(0 = automatic)."
            )
        for name in ("lr_min", "adam_epsilon", "max_grad_norm"):
            _positive(f"train.{name}", getattr(self, name))
        if self.lr_init is not None:
            _positive("train.lr_init", self.lr_init)
        if not 0.0 < self.lr_decay <= 1.0:
            raise ConfigError(f"train.lr_decay={self.lr_decay}: expected a factor in (0, 1].")
        for name in ("weight_decay", "kl_ic_scale", "kl_co_scale", "l2_gen_scale", "l2_con_scale"):
            _at_least(f"train.{name}", getattr(self, name), 0.0)
        if self.max_minutes is not None:
            _positive("train.max_minutes", self.max_minutes)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(
                f"train.ema_decay={self.ema_decay}: expected a value in [0, 1) (0 = no averaging)."
            )


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rerun a fit; saved in the run directory (:attr:`nwb_lfads.rundir.RunDir.config`)."""

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
    if isinstance(value, enum.Enum):
        return value.value
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
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, found {value!r}.")
        return tuple(_coerce(v, args[0], where) for v in value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, found {value!r}.")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
        return _choice(value, hint, where)
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


# ------------------------------------------------------------------------- value checks
def _choice(value, kind: type[enum.StrEnum], where: str):
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{where}={value!r}: expected {' or '.join(choices(kind))}.") from None


def _set_choice(obj, section: str, name: str, kind: type[enum.StrEnum]) -> None:
    """Turn a plain string field of a frozen dataclass into its choice enum (ConfigError)."""
    object.__setattr__(obj, name, _choice(getattr(obj, name), kind, f"{section}.{name}"))


def _real(where: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{where}={value!r}: expected a number.")
    return float(value)


def _positive(where: str, value) -> None:
    if not _real(where, value) > 0:
        raise ConfigError(f"{where}={value!r}: expected a number > 0.")


def _at_least(where: str, value, low) -> None:
    if isinstance(low, int) and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}={value!r}: expected a whole number >= {low}.")
    if not _real(where, value) >= low:
        raise ConfigError(f"{where}={value!r}: expected a value >= {low}.")


def _in_unit_interval(where: str, value) -> None:
    if not 0.0 <= _real(where, value) < 1.0:
        raise ConfigError(f"{where}={value!r}: expected a value in [0, 1).")


def resolve_for_data(cfg: RunConfig, n_sessions: int) -> RunConfig:
    """``cfg`` with its automatic settings made concrete for a fit of ``n_sessions`` sessions.

    ``train.lr_init`` ``None`` -> :data:`LR_ONE_SESSION` for one session, :data:`LR_STITCHED`
    for several; ``model.readin_init`` ``auto`` -> ``pcr`` for several sessions under the
    Poisson likelihood, ``random`` otherwise (one session: the single-trial PCR start fitted
    worse than random; the Gaussian likelihood: not measured). The measurements behind both:
    docs/DESIGN.md, "Stitching". Settings given explicitly are kept.
    """
    stitched = n_sessions > 1
    model, train = {}, {}
    if cfg.train.lr_init is None:
        train["lr_init"] = LR_STITCHED if stitched else LR_ONE_SESSION
    if cfg.model.readin_init == ReadinMethod.AUTO:
        pcr = stitched and cfg.model.likelihood == Likelihood.POISSON
        model["readin_init"] = ReadinMethod.PCR if pcr else ReadinMethod.RANDOM
    return cfg.replace(model=model, train=train) if model or train else cfg


def check_against_data(model: ModelConfig, *, n_bins: int, n_sessions: int) -> None:
    """The checks that need the binned data: ConfigError unless ``model`` suits trials of
    ``n_bins`` bins from ``n_sessions`` sessions."""
    w = model.jitter_width
    if w and 2 * w >= n_bins:
        raise ConfigError(
            f"model.jitter_width={w}: expected 0 (off) or a shift of 1 to {(n_bins - 1) // 2} "
            f"bins for these {n_bins}-bin trials."
        )
    if model.readin_init == ReadinMethod.PCR and n_sessions == 1 and model.readin_dim == 0:
        raise ConfigError(
            "model.readin_init=pcr: this model has no read-in (one session and "
            "model.readin_dim=0); set model.readin_dim (e.g. --set model.readin_dim=20) or use "
            "readin_init=random."
        )
