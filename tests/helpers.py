"""Small synthetic sessions for the tests, shaped like the reader's and ``infer``'s output.

``make_session`` builds what ``nwb_lfads.io.read.read_session`` returns (an ``xarray.Dataset``
with ``spikes``: int32 counts, shape [M trials, T bins, N units]) from Poisson counts, and
``make_results`` what ``nwb_lfads.infer.infer`` returns for such a session. Tests import them
with ``from helpers import make_session`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def sine_rates(
    rng: np.random.Generator,
    conditions: np.ndarray,
    n_bins: int,
    n_units: int,
    *,
    phase_high: float = 2 * np.pi,
    offset: float = 0.3,
) -> np.ndarray:
    """Condition-dependent rates: ``exp(sin(ramp * (1 + condition) + phase_unit) - offset)``.

    Args:
        rng: draws the unit phases, uniform on [0, phase_high) (one draw of ``n_units``).
        conditions: int condition id per trial, shape [M].
        n_bins: T; the ramp runs from 0 to 3 over the T bins.
        n_units: N.
        phase_high: upper end of the phase distribution.
        offset: subtracted inside the exponential (a lower value, more spikes).

    Returns:
        Expected counts per bin, float64, shape [M, T, N].
    """
    phase = rng.uniform(0, phase_high, n_units)
    ramp = np.linspace(0, 3, n_bins)[None, :, None] * (1 + conditions[:, None, None])
    return np.exp(np.sin(ramp + phase) - offset)


def make_session(
    sid: str = "s",
    n_trials: int = 48,
    n_bins: int = 20,
    n_units: int = 10,
    *,
    seed: int = 0,
    rate: float | None = None,
    spikes: np.ndarray | None = None,
    conditions: int | np.ndarray | None = 6,
    phase_high: float = 2 * np.pi,
    offset: float = 0.3,
    bin_size: float = 0.01,
    first_trial: int = 0,
    first_unit: int = 0,
    align_spacing: float | None = None,
    heldout=None,
    split=None,
    coords: dict | None = None,
    source: str | None = None,
    attrs: dict | None = None,
) -> xr.Dataset:
    """A reader-shaped session of Poisson counts.

    Args:
        sid: ``attrs["session_id"]``; the source defaults to ``f"{sid}.nwb"``.
        n_trials, n_bins, n_units: M, T, N.
        seed: seeds the one ``np.random.default_rng`` that draws everything.
        rate: a constant expected count per bin for every unit; ``None`` draws condition-
            dependent rates from :func:`sine_rates` (with ``phase_high`` and ``offset``).
        spikes: counts [M, T, N] to use as they are (e.g. a ``generate_sessions`` session's);
            M, T and N then come from their shape and nothing is drawn.
        conditions: the ``condition_id`` coordinate, int [M]; an int k means ``arange(M) % k``;
            ``None``: no such coordinate (then ``rate`` or ``spikes`` must be given).
        bin_size: seconds; the ``time`` coordinate is ``arange(T) * bin_size``.
        first_trial, first_unit: the first trial and unit id (ids are consecutive).
        align_spacing: seconds between trials; adds ``align_time = arange(M) * align_spacing``.
        heldout: bool [N], the ``heldout`` unit coordinate (absent when ``None``).
        split: str [M], the ``split`` trial coordinate (absent when ``None``).
        coords: further coordinates, e.g. ``{"depth": ("unit", ...)}``.
        source: ``attrs["source"]``.
        attrs: further attributes, e.g. ``{"align_to": "go"}``.

    Returns:
        ``xarray.Dataset`` with ``spikes``: int32 counts, dims (trial, time, unit).
    """
    rng = np.random.default_rng(seed)
    if spikes is not None:
        n_trials, n_bins, n_units = np.shape(spikes)
    if isinstance(conditions, int):
        conditions = np.arange(n_trials) % conditions
    if spikes is None and rate is None:
        rates = sine_rates(
            rng, np.asarray(conditions), n_bins, n_units, phase_high=phase_high, offset=offset
        )
        spikes = rng.poisson(rates)
    elif spikes is None:
        spikes = rng.poisson(rate, (n_trials, n_bins, n_units))
    all_coords = {
        "trial": np.arange(n_trials) + first_trial,
        "time": np.arange(n_bins) * bin_size,
        "unit": np.arange(n_units) + first_unit,
    }
    if conditions is not None:
        all_coords["condition_id"] = ("trial", np.asarray(conditions))
    if align_spacing is not None:
        all_coords["align_time"] = ("trial", np.arange(n_trials) * align_spacing)
    if heldout is not None:
        all_coords["heldout"] = ("unit", np.asarray(heldout, bool))
    if split is not None:
        all_coords["split"] = ("trial", np.asarray(split))
    all_coords.update(coords or {})
    return xr.Dataset(
        {"spikes": (("trial", "time", "unit"), np.asarray(spikes).astype(np.int32))},
        coords=all_coords,
        attrs={
            "session_id": sid,
            "source": f"{sid}.nwb" if source is None else source,
            "bin_size": bin_size,
            **(attrs or {}),
        },
    )


def make_results(ds: xr.Dataset, rates, factors) -> xr.Dataset:
    """A results Dataset as ``infer`` makes it for the session ``ds``: its coordinates and attrs.

    Args:
        ds: a reader-shaped session (:func:`make_session`, ``read_session``).
        rates: Hz, shape [M, T, N] (stored float32).
        factors: shape [M, T, F] (stored float32).
    """
    return xr.Dataset(
        {
            "rates": (("trial", "time", "unit"), np.asarray(rates, np.float32)),
            "factors": (("trial", "time", "factor"), np.asarray(factors, np.float32)),
        },
        coords={k: v for k, v in ds.coords.items()},
        attrs=dict(ds.attrs),
    )
