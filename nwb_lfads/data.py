"""From the reader's xarray sessions to the plain arrays the trainer uploads to the device.

Shape glossary: S sessions, M trials of all sessions stacked (session order, then trial
order), T bins, N units (padded to the largest session).

:func:`prepare_data` stacks every session's trials, zero-pads units, and builds the masks:

- ``unit_mask`` [S, N]: the unit exists in the session;
- ``input_mask`` [S, N]: exists and is not held out (the only units the encoders see);
- ``loss_mask`` [M, N]: the unit is observed on this trial (held-out units are unobserved on
  the evaluation trials chosen by ``DataConfig.eval_trials``, ``"COLUMN=VALUE"``);
- ``ext_inputs`` [M, T, X]: the sessions' external inputs (``external_inputs`` of the
  reader; the same labels in every session), or None when there are none;
- ``train`` / ``valid`` [M]: a seeded, condition-stratified split per session
  (``valid_fraction``, ``split_seed``); evaluation trials are never in the validation set;
- ``n_forward``: the last T_f of the T bins are forward-prediction bins (the reader's
  ``forward_bins``; 0 = none): never encoder input, scored except on evaluation trials.

Nothing computed here reads the spikes that are unobserved (``loss_mask`` false), so the
held-out spikes of evaluation trials cannot influence a fit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import DataConfig
from .errors import NwbContentError, SelectionError, SessionMismatchError


@dataclass(frozen=True)
class SessionInfo:
    """What a run remembers of a session (stored as JSON beside the checkpoint)."""

    session_id: str
    source: str
    n_units: int
    unit_ids: tuple
    trial_ids: tuple
    heldout: tuple  # bool per unit
    identifier: str = ""  # the NWB file's identifier ("" in runs written before it was kept)

    def to_dict(self) -> dict:
        return {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, d: dict) -> SessionInfo:
        return cls(
            session_id=str(d["session_id"]),
            source=str(d["source"]),
            n_units=int(d["n_units"]),
            unit_ids=tuple(d["unit_ids"]),
            trial_ids=tuple(d["trial_ids"]),
            heldout=tuple(bool(h) for h in d["heldout"]),
            identifier=str(d.get("identifier") or ""),
        )


@dataclass(frozen=True, eq=False)
class TrainingData:
    """All sessions as numpy arrays (see the module docstring for the glossary).

    spikes: float32 [M, T, N] counts, padded units 0. session: int32 [M].
    unit_mask, input_mask: bool [S, N]. loss_mask: bool [M, N].
    train, valid, eval: bool [M]. unit_means: float32 [S, N] mean count per bin over the
    observed entries of training trials (0 for padded units). time: float64 [T] bin centres,
    seconds. bin_size: seconds. sessions: one :class:`SessionInfo` per session.
    ext_inputs: float32 [M, T, X] external inputs, or None (no external inputs).
    n_forward: T_f, the last bins of T that are forward-prediction bins (0 = none).
    """

    spikes: np.ndarray
    session: np.ndarray
    unit_mask: np.ndarray
    input_mask: np.ndarray
    loss_mask: np.ndarray
    train: np.ndarray
    valid: np.ndarray
    eval: np.ndarray
    unit_means: np.ndarray
    time: np.ndarray
    bin_size: float
    sessions: tuple
    ext_inputs: np.ndarray | None = None
    n_forward: int = 0

    @property
    def n_sessions(self) -> int:
        return self.unit_mask.shape[0]

    @property
    def n_units_max(self) -> int:
        return self.spikes.shape[2]

    @property
    def n_bins(self) -> int:
        return self.spikes.shape[1]


def _name(ds) -> str:
    return str(ds.attrs.get("source") or ds.attrs.get("session_id") or "<dataset>")


def _check_session(ds, index: int) -> np.ndarray:
    name = _name(ds)
    if "spikes" not in ds:
        raise NwbContentError(
            f"{name}: session {index} has no 'spikes' variable; expected the output of "
            f"nwb_lfads.read_session."
        )
    spikes = ds["spikes"]
    if tuple(spikes.dims) != ("trial", "time", "unit"):
        raise NwbContentError(
            f"{name}: 'spikes' has dims {tuple(spikes.dims)}, expected ('trial', 'time', 'unit')."
        )
    arr = np.asarray(spikes.values)
    if arr.shape[0] == 0:
        raise SelectionError(
            f"{name}: session has zero usable trials (dropped: "
            f"{list(ds.attrs.get('dropped_trials', []))[:10]}); check --align-to and --window."
        )
    if arr.shape[2] == 0:
        raise SelectionError(f"{name}: session has no units; it cannot be fitted.")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise NwbContentError(f"{name}: 'spikes' must be finite non-negative counts.")
    return arr


def stack_external_inputs(datasets) -> np.ndarray | None:
    """float32 [M, T, X]: every session's ``external_inputs`` stacked in session order, or
    None when no session has them.

    Raises:
        SessionMismatchError: some sessions have external inputs and others not, or their
            input labels differ.
    """
    have = ["external_inputs" in ds for ds in datasets]
    if not any(have):
        return None
    labels = [
        tuple(ds.coords["input"].values.tolist()) if "external_inputs" in ds else ()
        for ds in datasets
    ]
    for ds, lab in zip(datasets, labels):
        if lab != labels[0]:
            raise SessionMismatchError(
                f"{_name(ds)}: external inputs {list(lab)} differ from {_name(datasets[0])}'s "
                f"{list(labels[0])}; every session needs the same --external-input names, with "
                f"the same number of columns."
            )
    return np.concatenate([np.asarray(ds["external_inputs"].values, np.float32) for ds in datasets])


def forward_bins(datasets) -> int:
    """T_f, the forward-prediction bins of the sessions (reader attr ``forward_bins``).

    Raises:
        SessionMismatchError: sessions read with different forward periods.
    """
    counts = [int(ds.attrs.get("forward_bins", 0)) for ds in datasets]
    for ds, c in zip(datasets, counts):
        if c != counts[0]:
            raise SessionMismatchError(
                f"{_name(ds)}: {c} forward bins, but {_name(datasets[0])} has {counts[0]}; read "
                f"all sessions with the same --forward."
            )
    return counts[0] if counts else 0


def _heldout(ds, cfg: DataConfig) -> np.ndarray:
    n = ds.sizes["unit"]
    if "heldout" in ds.coords:
        return np.asarray(ds.coords["heldout"].values, bool)
    if cfg.heldout_units is not None:
        if cfg.heldout_units in ds.coords and ds.coords[cfg.heldout_units].dims == ("unit",):
            return np.asarray(ds.coords[cfg.heldout_units].values, bool)
        unit_coords = [c for c in ds.coords if ds.coords[c].dims == ("unit",)]
        raise SelectionError(
            f"{_name(ds)}: held-out units column {cfg.heldout_units!r} is not a unit coordinate "
            f"of the session (unit coordinates: {unit_coords}); read the session with "
            f"heldout={cfg.heldout_units!r}."
        )
    return np.zeros(n, bool)


def _eval_trials(ds, cfg: DataConfig) -> np.ndarray:
    """bool [n_trials]: the trials ``cfg.eval_trials`` selects (:class:`TrialSelector`)."""
    n = ds.sizes["trial"]
    selector = cfg.eval_selector
    if selector is None:
        return np.zeros(n, bool)
    column = selector.column
    if column not in ds.coords or ds.coords[column].dims != ("trial",):
        trial_coords = [c for c in ds.coords if ds.coords[c].dims == ("trial",)]
        raise SelectionError(
            f"{_name(ds)}: eval-trials column {column!r} is not a trial coordinate "
            f"(trial coordinates: {trial_coords})."
        )
    selected = selector.matches(ds.coords[column].values)
    if not selected.any():
        values = sorted({str(v) for v in ds.coords[column].values})[:10]
        raise SelectionError(
            f"{_name(ds)}: --eval-trials {cfg.eval_trials} matches no trial; column {column!r} "
            f"holds {values}."
        )
    return selected


def split_trials(
    n: int,
    conditions: np.ndarray | None,
    fraction: float,
    candidates: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Validation mask [n] over the ``candidates`` (bool [n]): trials are ordered by condition
    (random order within a condition) and every ``1/fraction``-th is taken, so each condition
    contributes in proportion. At least one candidate stays for training."""
    valid = np.zeros(n, bool)
    idx = np.flatnonzero(candidates)
    if fraction <= 0 or len(idx) < 2:
        return valid
    key = rng.random(len(idx))
    order = np.lexsort((key, conditions[idx])) if conditions is not None else np.argsort(key)
    phase = rng.random()
    pos = np.arange(len(idx))
    take = np.floor((pos + 1) * fraction + phase) > np.floor(pos * fraction + phase)
    chosen = idx[order[take]]
    if len(chosen) >= len(idx):
        chosen = chosen[:-1]
    valid[chosen] = True
    return valid


def prepare_data(datasets, cfg: DataConfig) -> TrainingData:
    """Stack sessions into :class:`TrainingData` (see the module docstring).

    Args:
        datasets: list of ``xarray.Dataset`` from :func:`nwb_lfads.read_session`, all with
            the same number of bins (and bin size).
        cfg: the data configuration (``valid_fraction``, ``split_seed``, ``heldout_units``,
            ``eval_trials``).

    Raises:
        SelectionError, SessionMismatchError, NwbContentError, ConfigError: with the file named.
    """
    datasets = list(datasets)
    if not datasets:
        raise SelectionError("no sessions to fit: pass at least one source.")
    arrays = [_check_session(ds, i) for i, ds in enumerate(datasets)]
    T = arrays[0].shape[1]
    for ds, arr in zip(datasets[1:], arrays[1:]):
        if arr.shape[1] != T:
            raise SessionMismatchError(
                f"{_name(ds)}: {arr.shape[1]} bins per trial, but {_name(datasets[0])} "
                f"has {T}; read all sessions with the same --window and --bin-size."
            )
    sizes = {float(ds.attrs.get("bin_size", cfg.bin_size)) for ds in datasets}
    if len(sizes) > 1:
        raise SessionMismatchError(
            f"sessions have different bin sizes {sorted(sizes)} s; read them with one --bin-size."
        )
    keys = [
        (str(ds.attrs.get("session_id", i)), str(ds.attrs.get("source", i)))
        for i, ds in enumerate(datasets)
    ]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise SessionMismatchError(
            f"duplicate sessions {[k[1] for k in dup]}: each source may be given once."
        )

    S, N = len(datasets), max(a.shape[2] for a in arrays)
    M = sum(a.shape[0] for a in arrays)
    spikes = np.zeros((M, T, N), np.float32)
    session = np.zeros(M, np.int32)
    unit_mask = np.zeros((S, N), bool)
    input_mask = np.zeros((S, N), bool)
    loss_mask = np.zeros((M, N), bool)
    train, valid, evals = (np.zeros(M, bool) for _ in range(3))
    infos = []
    rng = np.random.default_rng(cfg.split_seed)
    start = 0
    for s, (ds, arr) in enumerate(zip(datasets, arrays)):
        m, _, n = arr.shape
        sl = slice(start, start + m)
        held = _heldout(ds, cfg)
        if held.all():
            raise SelectionError(
                f"{_name(ds)}: every unit is held out; the encoders need at least one held-in unit."
            )
        if cfg.heldout_units is not None and not held.any():
            raise SelectionError(
                f"{_name(ds)}: held-out units column {cfg.heldout_units!r} marks no unit; "
                f"choose a column that is true for the units to predict, or drop --heldout-units."
            )
        ev = _eval_trials(ds, cfg)
        if ev.any() and not held.any():
            raise SelectionError(
                f"{_name(ds)}: eval trials ({cfg.eval_trials}) need held-out units; "
                f"pass --heldout-units."
            )
        spikes[sl, :, :n] = arr
        session[sl] = s
        unit_mask[s, :n] = True
        input_mask[s, :n] = ~held
        loss_mask[sl, :n] = True
        loss_mask[sl, :n] &= ~(ev[:, None] & held[None, :])
        cond = np.asarray(ds.coords["condition_id"].values) if "condition_id" in ds.coords else None
        v = split_trials(m, cond, cfg.valid_fraction, ~ev, rng)
        valid[sl], train[sl], evals[sl] = v, ~v, ev
        trial_ids = ds.coords["trial"].values.tolist() if "trial" in ds.coords else list(range(m))
        unit_ids = ds.coords["unit"].values.tolist() if "unit" in ds.coords else list(range(n))
        infos.append(
            SessionInfo(
                session_id=keys[s][0],
                source=keys[s][1],
                n_units=n,
                unit_ids=tuple(unit_ids),
                trial_ids=tuple(trial_ids),
                heldout=tuple(bool(h) for h in held),
                identifier=str(ds.attrs.get("identifier") or ""),
            )
        )
        start += m

    observed = loss_mask[:, None, :] & train[:, None, None]  # [M, 1, N]
    t_obs = T - forward_bins(datasets)  # the forward bins of evaluation trials are never read
    sums = np.zeros((S, N))
    counts = np.zeros((S, N))
    np.add.at(sums, session, np.where(observed, spikes[:, :t_obs], 0.0).sum(axis=1))
    np.add.at(counts, session, np.broadcast_to(observed, (M, 1, N)).sum(axis=1) * t_obs)
    unit_means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0).astype(np.float32)
    time = (
        np.asarray(datasets[0].coords["time"].values, float)
        if "time" in datasets[0].coords
        else np.arange(T) * cfg.bin_size
    )
    return TrainingData(
        spikes,
        session,
        unit_mask,
        input_mask,
        loss_mask,
        train,
        valid,
        evals,
        unit_means,
        time,
        sizes.pop(),
        tuple(infos),
        stack_external_inputs(datasets),
        forward_bins(datasets),
    )


def _session_info(ds, index: int, arr: np.ndarray, cfg: DataConfig | None = None) -> SessionInfo:
    m, _, n = arr.shape
    held = _heldout(ds, cfg or DataConfig())
    return SessionInfo(
        session_id=str(ds.attrs.get("session_id", index)),
        source=str(ds.attrs.get("source", index)),
        n_units=n,
        unit_ids=tuple(ds.coords["unit"].values.tolist() if "unit" in ds.coords else range(n)),
        trial_ids=tuple(ds.coords["trial"].values.tolist() if "trial" in ds.coords else range(m)),
        heldout=tuple(bool(h) for h in held),
        identifier=str(ds.attrs.get("identifier") or ""),
    )


def _match_session(ds, sessions) -> int:
    sid = str(ds.attrs.get("session_id", ""))
    for s, info in enumerate(sessions):
        if sid and info.session_id == sid:
            return s
    name = Path(str(ds.attrs.get("source", ""))).name
    for s, info in enumerate(sessions):
        if name and Path(info.source).name == name:
            return s
    raise SessionMismatchError(
        f"{_name(ds)}: session {sid!r} is not one the model was trained on "
        f"(trained sessions: {[i.session_id for i in sessions]})."
    )


def inference_data(datasets, sessions, n_units_max: int) -> tuple[TrainingData, list[int]]:
    """Arrays for inference on sessions a model was trained on.

    Args:
        datasets: xarray sessions (all or new trials).
        sessions: the model's sessions (list of :class:`SessionInfo`), or None when
            ``datasets`` are the training sessions in training order.
        n_units_max: the model's padded unit count N.

    Returns:
        ``(data, order)``: a :class:`TrainingData` over the model's sessions holding the
        datasets' trials in order (no train/valid split), and each dataset's session index.
    """
    datasets = list(datasets)
    if not datasets:
        raise SelectionError("no sessions to infer: pass at least one source.")
    arrays = [_check_session(ds, i) for i, ds in enumerate(datasets)]
    if sessions is None:
        sessions = [_session_info(ds, i, a) for i, (ds, a) in enumerate(zip(datasets, arrays))]
        order = list(range(len(datasets)))
    else:
        sessions = list(sessions)
        order = [_match_session(ds, sessions) for ds in datasets]
    T = arrays[0].shape[1]
    for ds, arr, s in zip(datasets, arrays, order):
        if arr.shape[1] != T:
            raise SessionMismatchError(
                f"{_name(ds)}: {arr.shape[1]} bins per trial, expected {T} like the other "
                f"sessions; read with the run's --window and --bin-size."
            )
        if arr.shape[2] != sessions[s].n_units or arr.shape[2] > n_units_max:
            raise SessionMismatchError(
                f"{_name(ds)}: {arr.shape[2]} units, but the model's session "
                f"{sessions[s].session_id!r} has {sessions[s].n_units}; read the same units."
            )
    S, N = len(sessions), n_units_max
    unit_mask = np.zeros((S, N), bool)
    input_mask = np.zeros((S, N), bool)
    for s, info in enumerate(sessions):
        unit_mask[s, : info.n_units] = True
        input_mask[s, : info.n_units] = ~np.asarray(info.heldout, bool)
    spikes = np.zeros((sum(a.shape[0] for a in arrays), T, N), np.float32)
    session = np.concatenate([np.full(a.shape[0], s, np.int32) for a, s in zip(arrays, order)])
    start = 0
    for arr in arrays:
        spikes[start : start + arr.shape[0], :, : arr.shape[2]] = arr
        start += arr.shape[0]
    M = len(session)
    none = np.zeros(M, bool)
    time = (
        np.asarray(datasets[0].coords["time"].values, float)
        if "time" in datasets[0].coords
        else np.arange(T)
    )
    bin_size = float(datasets[0].attrs.get("bin_size", DataConfig().bin_size))
    data = TrainingData(
        spikes,
        session,
        unit_mask,
        input_mask,
        unit_mask[session].copy(),
        none,
        none.copy(),
        none.copy(),
        np.zeros((S, N), np.float32),
        time,
        bin_size,
        tuple(sessions),
        stack_external_inputs(datasets),
        forward_bins(datasets),
    )
    return data, order


def sample_validation_mask(data: TrainingData, rate: float, seed: int) -> np.ndarray | None:
    """float32 [M, T, N]: 1 for (bin, unit) elements held back from training (``sv_rate``),
    drawn with ``seed``; None when ``rate`` is 0."""
    if rate <= 0:
        return None
    rng = np.random.default_rng([seed, 5])
    return (rng.random(data.spikes.shape) < rate).astype(np.float32)
