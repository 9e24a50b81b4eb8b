"""The AutoLFADS search space and population-based-training schedule, and their YAML form.

AutoLFADS (Keshtkaran et al. 2022) trains a population of LFADS models and, once every
*generation* of ``perturbation_interval`` epochs, replaces the worst ``quantile_fraction`` of
the population by copies of the best (weights and optimizer state) whose hyperparameters are
perturbed (multiplied by one of ``perturbation_factors``) or, with ``resample_probability``,
drawn afresh from their range. Members are ranked by the exponentially smoothed validation
reconstruction loss (the KL and L2 weights are searched, so the full loss would reward
lowering them). Perturbed values are clipped to the search range.

The searched hyperparameters are the ones that leave the parameter shapes unchanged, so a
checkpoint of one member loads into any other: dropout, coordinated dropout, the KL weights
of the initial condition and of the inferred inputs, the L2 weights of the generator and
controller recurrent kernels, and the learning rate. Each has a search range (``low``,
``high``), a ``scale`` (``log`` or ``linear``) and an initialisation range ``init`` (a
sub-range that the first generation is drawn from).

A YAML file overrides the defaults::

    hyperparameters:
      train.lr_init: {low: 1.0e-4, high: 1.0e-2}   # merged over the default entry
      train.l2_con_scale: null                      # not searched (the config's value is kept)
    pbt:
      perturbation_interval: 10
      quantile_fraction: 0.25

Values are read with ``yaml.safe_load``; nothing is evaluated. Ray is not imported here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ConfigError


@dataclass(frozen=True)
class Hyperparameter:
    """One searched setting: a ``SECTION.FIELD`` of the run config and its ranges.

    Attributes:
        name: dotted config key, e.g. ``train.lr_init``.
        low, high: the search range (perturbations are clipped to it).
        scale: ``log`` (perturb/resample in log space) or ``linear``.
        init: (low, high) range of the first generation's draws, inside the search range.
    """

    name: str
    low: float
    high: float
    scale: str = "log"
    init: tuple[float, float] | None = None

    @property
    def init_range(self) -> tuple[float, float]:
        return self.init if self.init is not None else (self.low, self.high)

    def clip(self, value: float) -> float:
        return float(min(max(float(value), self.low), self.high))

    def to_dict(self) -> dict:
        return {
            "low": self.low,
            "high": self.high,
            "scale": self.scale,
            "init": list(self.init_range),
        }


@dataclass(frozen=True)
class PBTSchedule:
    """When and how the population is exploited and explored.

    Attributes:
        perturbation_interval: epochs per generation (members are compared every this many).
        burn_in: epochs before the first comparison.
        quantile_fraction: share of the population replaced (bottom) and copied (top) per generation.
        resample_probability: chance that a copied hyperparameter is drawn afresh from its range.
        perturbation_factors: factors one of which multiplies each copied hyperparameter.
        smoothing: weight of the past in the exponentially smoothed validation reconstruction loss.
        synch: compare all members at the same epoch (AutoLFADS's generations); false lets fast
            members exploit without waiting.
        stop_patience: stop the whole sweep after this many generations without improvement of
            the population's best smoothed loss (0: never; ``train.max_epochs`` still applies).
    """

    perturbation_interval: int = 25
    burn_in: int = 0
    quantile_fraction: float = 0.25
    resample_probability: float = 0.25
    perturbation_factors: tuple[float, float] = (0.8, 1.2)
    smoothing: float = 0.7
    synch: bool = True
    stop_patience: int = 0

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["perturbation_factors"] = list(self.perturbation_factors)
        return d


# The AutoLFADS hyperparameters, with ranges in this package's units: reconstruction and KL
# are nats per trial, L2 is scale * 0.5 * mean(w^2) of the recurrent kernels (as TF LFADS),
# so the config defaults (KL weights 1, l2_gen_scale 2000, lr 0.02) lie inside the ranges. The
# learning rate's bound is 3e-2 (the default 0.02 must be reachable); members start in
# AutoLFADS's initial range.
DEFAULT_HYPERPARAMETERS: tuple[Hyperparameter, ...] = (
    Hyperparameter("model.dropout_rate", 0.0, 0.6, "linear", (0.0, 0.6)),
    Hyperparameter("model.cd_rate", 0.01, 0.7, "linear", (0.01, 0.7)),
    Hyperparameter("train.kl_ic_scale", 1e-3, 10.0, "log", (1e-2, 1.0)),
    Hyperparameter("train.kl_co_scale", 1e-3, 10.0, "log", (1e-2, 1.0)),
    Hyperparameter("train.l2_gen_scale", 1.0, 1e4, "log", (1e2, 2e3)),
    Hyperparameter("train.l2_con_scale", 1.0, 1e4, "log", (1e1, 1e3)),
    Hyperparameter("train.lr_init", 1e-5, 3e-2, "log", (1e-3, 5e-3)),
)
KNOWN = tuple(h.name for h in DEFAULT_HYPERPARAMETERS)
RATES = ("model.dropout_rate", "model.cd_rate")  # probabilities: range inside [0, 1)
_FIELDS = ("low", "high", "scale", "init")
_SCHEDULE_FIELDS = tuple(f.name for f in dataclasses.fields(PBTSchedule))
_UNIT_BOUNDS = {
    "quantile_fraction": (lambda v: 0 < v <= 0.5, "(0, 0.5]"),
    "resample_probability": (lambda v: 0 <= v <= 1, "[0, 1]"),
    "smoothing": (lambda v: 0 <= v < 1, "[0, 1)"),
}


@dataclass(frozen=True)
class SearchSpace:
    """The searched hyperparameters and the PBT schedule of one sweep."""

    hyperparameters: tuple[Hyperparameter, ...] = DEFAULT_HYPERPARAMETERS
    pbt: PBTSchedule = field(default_factory=PBTSchedule)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hyperparameters)

    def __getitem__(self, name: str) -> Hyperparameter:
        for h in self.hyperparameters:
            if h.name == name:
                return h
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {
            "hyperparameters": {h.name: h.to_dict() for h in self.hyperparameters},
            "pbt": self.pbt.to_dict(),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def clip(self, values: dict) -> dict:
        """``values`` with every searched hyperparameter clipped to its range."""
        return {k: (self[k].clip(v) if k in self.names else v) for k, v in values.items()}


def default_search_space() -> SearchSpace:
    """The AutoLFADS defaults (see the module docstring)."""
    return SearchSpace()


def _number(value, where: str) -> float:
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, found {value!r}.")
    return float(value)


def _hyperparameter(name: str, entry, base: Hyperparameter | None, where: str) -> Hyperparameter:
    if name not in KNOWN:
        raise ConfigError(
            f"{where}: unknown hyperparameter {name!r}; the ones that can be searched are "
            f"{', '.join(KNOWN)}."
        )
    if not isinstance(entry, dict):
        raise ConfigError(
            f"{where}: {name}: expected a mapping with {', '.join(_FIELDS)} (or null to not "
            f"search it), found {entry!r}."
        )
    unknown = set(entry) - set(_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: {name}: unknown field(s) {sorted(unknown)}; expected {', '.join(_FIELDS)}."
        )
    merged = {**(base.to_dict() if base is not None else {}), **entry}
    if base is not None and ("low" in entry or "high" in entry) and "init" not in entry:
        merged["init"] = None  # a new range without an init range: draw from the whole range
    missing = [k for k in ("low", "high") if merged.get(k) is None]
    if missing:
        raise ConfigError(f"{where}: {name}: missing {', '.join(missing)}.")
    low, high = (
        _number(merged["low"], f"{where}: {name}.low"),
        _number(merged["high"], f"{where}: {name}.high"),
    )
    scale = merged.get("scale") or "log"
    if scale not in ("log", "linear"):
        raise ConfigError(f"{where}: {name}.scale: expected log or linear, found {scale!r}.")
    init = merged.get("init")
    if init is not None:
        if not isinstance(init, (list, tuple)) or len(init) != 2:
            raise ConfigError(f"{where}: {name}.init: expected [low, high], found {init!r}.")
        init = (
            _number(init[0], f"{where}: {name}.init"),
            _number(init[1], f"{where}: {name}.init"),
        )
    hp = Hyperparameter(name, low, high, scale, init)
    _check_ranges(hp, where)
    return hp


def _check_ranges(hp: Hyperparameter, where: str) -> None:
    name, (ilo, ihi) = hp.name, hp.init_range
    if not hp.low < hp.high:
        raise ConfigError(f"{where}: {name}: low ({hp.low:g}) must be below high ({hp.high:g}).")
    if hp.scale == "log" and hp.low <= 0:
        raise ConfigError(
            f"{where}: {name}: a log-scale range needs low > 0 (found {hp.low:g}); use "
            f"scale: linear or a positive low."
        )
    if name in RATES and (hp.low < 0 or hp.high >= 1):
        raise ConfigError(
            f"{where}: {name} is a probability: its range must lie in [0, 1), found "
            f"[{hp.low:g}, {hp.high:g}]."
        )
    if name not in RATES and hp.low < 0:
        raise ConfigError(f"{where}: {name} must not be negative, found low {hp.low:g}.")
    if not (hp.low <= ilo <= ihi <= hp.high):
        raise ConfigError(
            f"{where}: {name}.init [{ilo:g}, {ihi:g}] must lie inside [low, high] = "
            f"[{hp.low:g}, {hp.high:g}]."
        )


def _schedule(entry, base: PBTSchedule, where: str) -> PBTSchedule:
    if entry is None:
        return base
    if not isinstance(entry, dict):
        raise ConfigError(
            f"{where}: pbt: expected a mapping with {', '.join(_SCHEDULE_FIELDS)}, found {entry!r}."
        )
    unknown = set(entry) - set(_SCHEDULE_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: pbt: unknown field(s) {sorted(unknown)}; expected {', '.join(_SCHEDULE_FIELDS)}."
        )
    values = dataclasses.asdict(base)
    for key, value in entry.items():
        at = f"{where}: pbt.{key}"
        if key in ("perturbation_interval", "burn_in", "stop_patience"):
            low = 1 if key == "perturbation_interval" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(
                    f"{at}: expected a whole number of epochs >= {low}, found {value!r}."
                )
        elif key == "synch":
            if not isinstance(value, bool):
                raise ConfigError(f"{at}: expected true or false, found {value!r}.")
        elif key == "perturbation_factors":
            if not isinstance(value, (list, tuple)) or len(value) < 1:
                raise ConfigError(
                    f"{at}: expected a list of factors such as [0.8, 1.2], found {value!r}."
                )
            value = tuple(_number(v, at) for v in value)
            if any(v <= 0 for v in value):
                raise ConfigError(f"{at}: factors must be positive, found {list(value)}.")
        else:
            value = _number(value, at)
            check, text = _UNIT_BOUNDS[key]
            if not check(value):
                raise ConfigError(f"{at}: expected a value in {text}, found {value:g}.")
        values[key] = value
    return PBTSchedule(**values)


def search_space_from_dict(
    d, *, source: str = "search space", base: SearchSpace | None = None
) -> SearchSpace:
    """Merge a mapping (see the module docstring) over ``base`` (default: the AutoLFADS defaults).

    Raises:
        ConfigError: unknown hyperparameters or fields, bad ranges, an empty search.
    """
    base = base or default_search_space()
    if d is None:
        return base
    if not isinstance(d, dict):
        raise ConfigError(
            f"{source}: expected a mapping with 'hyperparameters' and/or 'pbt', found "
            f"{type(d).__name__}."
        )
    unknown = set(d) - {"hyperparameters", "pbt"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown section(s) {sorted(unknown)}; expected hyperparameters, pbt."
        )
    entries = d.get("hyperparameters") or {}
    if not isinstance(entries, dict):
        raise ConfigError(
            f"{source}: hyperparameters: expected a mapping NAME: {{low, high, scale, init}}, "
            f"found {entries!r}."
        )
    hps = {h.name: h for h in base.hyperparameters}
    for name, entry in entries.items():
        name = str(name)
        if entry is None:
            if name not in KNOWN:
                _hyperparameter(name, {}, None, source)  # raises the unknown-name error
            hps.pop(name, None)
            continue
        hps[name] = _hyperparameter(name, entry, hps.get(name) or _default(name), source)
    if not hps:
        raise ConfigError(
            f"{source}: no hyperparameter left to search; keep at least one of {', '.join(KNOWN)}."
        )
    ordered = tuple(hps[n] for n in KNOWN if n in hps)
    return SearchSpace(ordered, _schedule(d.get("pbt"), base.pbt, source))


def _default(name: str) -> Hyperparameter | None:
    return next((h for h in DEFAULT_HYPERPARAMETERS if h.name == name), None)


def load_search_space(path) -> SearchSpace:
    """Read a search-space YAML file (see the module docstring) merged over the defaults."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{path}: search-space file not found; pass a YAML file with 'hyperparameters' "
            f"and/or 'pbt' sections to --search-space."
        )
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from None
    return search_space_from_dict(d, source=str(path))
