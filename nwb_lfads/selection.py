"""``"COLUMN=VALUE"`` trial selections: one parser and one matching rule.

Used by ``fit --eval-trials`` (:class:`nwb_lfads.config.DataConfig`), ``infer --trials`` and
``evaluate``. A trial matches when its value, as text, equals ``VALUE``, or when its value is
a number (not a boolean) and ``VALUE`` reads as the same number: ``condition_id=3`` matches 3
and 3.0 (and the text ``"3"``, not ``"3.0"``); ``split=val`` matches ``"val"`` and ``b"val"``. Imports nothing of the package but :mod:`nwb_lfads.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class TrialSelector:
    """``"COLUMN=VALUE"``: the trials whose ``COLUMN`` equals ``VALUE``.

    Matching follows the module's rule (the same for ``--eval-trials``, ``infer --trials`` and
    ``evaluate``)."""

    column: str
    value: str

    @classmethod
    def parse(cls, spec: str, option: str = "data.eval_trials") -> TrialSelector:
        """``"COLUMN=VALUE"`` -> selector; ConfigError naming ``option`` when malformed."""
        column, sep, value = str(spec).partition("=")
        if not sep or not column.strip() or not value.strip():
            raise ConfigError(f"{option}={spec!r}: expected COLUMN=VALUE, e.g. split=val.")
        return cls(column.strip(), value.strip())

    def __str__(self) -> str:
        return f"{self.column}={self.value}"

    def matches(self, values) -> np.ndarray:
        """bool [n]: which of ``values`` (one per trial, any dtype) the selector picks."""
        return values_match(values, [self.value])


def values_match(values, wanted) -> np.ndarray:
    """bool [n]: which ``values`` equal one of ``wanted`` under :class:`TrialSelector`'s rule."""
    targets = []
    for w in wanted:
        text = w.decode() if isinstance(w, bytes) else str(w)
        targets.append((text, _number(w)))
    out = np.zeros(len(values), bool)
    for i, v in enumerate(values):
        text = v.decode() if isinstance(v, bytes) else str(v)
        num = _number(v) if not isinstance(v, str | bytes) else None
        out[i] = any(
            text == t or (num is not None and n is not None and num == n) for t, n in targets
        )
    return out


def _number(v) -> float | None:
    if isinstance(v, bool | np.bool_):
        return None
    if isinstance(v, int | float | np.number):
        return float(v)
    try:
        return float(v.decode() if isinstance(v, bytes) else v)
    except (TypeError, ValueError):
        return None
