"""Score the LFADS rates stored in enriched NWB files: NLB metrics and recovery of true rates.

``evaluate(RUN_DIR or FILE.lfads.nwb)`` re-bins each session's spikes with the data options
the rates were fitted with (``config.yaml`` of the run, or the ``provenance`` table of the
file), samples ``processing/lfads/rates`` at the same bin centres (session time
``align_time + time``, nearest sample within half a bin) and computes what the file supports:

- ``r2_truth`` / ``r2_truth_smoothing``: mean per-neuron R^2 of the rates (and of
  Gaussian-smoothed spikes) against ``processing/ground_truth/rates`` (simulated sessions);
  ``r2_truth_heldout_eval``: the same for held-out units on evaluation trials, ``r2_truth_heldin``
  for held-in units on all trials; ``co_bps_truth``: co-bps of the true rates (the ceiling);
- ``bps`` (all units) and ``bps_heldin``: bits per spike over all trials (NLB null model);
- ``co_bps`` / ``co_bps_smoothing``: with a held-out units column, co-smoothing bits per spike
  of the held-out units on evaluation trials (``data.eval_trials``, e.g. ``split=val``; all
  trials without it) against NLB's baseline (smoothed held-in spikes -> Poisson GLM, trained on
  the other trials; without an eval split cross-fitted over 5 blocks of trials);
- ``psth_r2``: with a ``condition_id`` trials column, condition-averaged rates of the evaluation
  trials against the PSTH of smoothed spikes of all trials;
- ``decoding_r2_<series>`` / ``..._smoothing``: ridge decoding of behaviour from rates (or
  smoothed spikes), NLB's velocity-decoding R^2: the series (any ``TimeSeries`` named with
  ``behavior=``, by default those of ``BEHAVIOR_SERIES`` the file has) is averaged onto the
  trials' bins; behaviour at bin t is paired with rates at bin t - lag (``lag`` seconds, default
  NLB MC_Maze's 100 ms); the ridge penalty is chosen by 5-fold cross-validation over blocks of
  training trials (``metrics.NLB_RIDGE_ALPHAS``), then the R^2 (uniform over channels) is taken
  on the evaluation trials (every fifth trial without an eval split);
- with ``targets``: nlb_tools evaluation targets scored like NLB (:mod:`nwb_lfads.nlb_targets`):
  ``targets_co_bps``, ``targets_vel_r2``, ``targets_psth_r2``, ``targets_fp_bps``;
- with ``nlb_submission``: the rates written as an NLB submission file
  (:mod:`nwb_lfads.nlb_submission`); a submission file given as the path is scored against
  ``targets`` the way nlb_tools does.

A metric the data cannot support is left out, with the reason under ``skipped``. Glossary:
B trials, T bins, N units (N_in held-in, N_out held-out), D behaviour channels, E eval trials.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import metrics as M
from .baselines import smoothing_baseline, smoothing_rates
from .errors import (
    ConfigError,
    EvaluationError,
    InputFileError,
    NwbContentError,
    NwbLfadsError,
    RunDirError,
    SelectionError,
    TargetsError,
)
from .nlb_submission import is_submission, score_submission, submission_arrays, write_submission
from .nlb_targets import nlb_group_name, score_targets
from .rundir import RunDir, evaluation_path, write_text_atomic
from .selection import TrialSelector

BEHAVIOR_SERIES = ("hand_vel", "finger_vel", "cursor_vel", "hand_pos", "finger_pos", "cursor_pos")
CONDITION_COLUMN = "condition_id"
SMOOTHING_SIGMA_S = 0.05  # s, Gaussian sd of the smoothing baselines and of the PSTH target
DECODING_LAG_S = M.NLB_VELOCITY_LAG_S["mc_maze"]


LABELS = {
    "r2_truth": "R^2 vs true rates",
    "r2_truth_smoothing": "  smoothing baseline",
    "r2_truth_heldout_eval": "R^2 vs truth, held-out units, eval trials",
    "r2_truth_heldin": "R^2 vs truth, held-in units",
    "co_bps_truth": "co-bps of the true rates (ceiling)",
    "bps": "bits/spike, all units",
    "bps_heldin": "bits/spike, held-in units",
    "co_bps": "co-bps (held-out units, eval trials)",
    "co_bps_smoothing": "  smoothing + GLM baseline",
    "psth_r2": "PSTH R^2",
    "fp_bps": "fp-bps (forward bins, eval trials)",
    "fp_bps_heldin": "  held-in units",
    "fp_bps_heldout": "  held-out units",
    "fp_bps_truth": "fp-bps of the true rates (ceiling)",
    "targets_co_bps": "targets: co-bps",
    "targets_vel_r2": "targets: velocity R^2",
    "targets_psth_r2": "targets: PSTH R^2",
    "targets_fp_bps": "targets: fp-bps",
}


# ----------------------------------------------------------------------------- metrics on arrays
def session_metrics(
    spikes,
    rates_hz,
    bin_size: float,
    *,
    heldout=None,
    eval_trials=None,
    truth_hz=None,
    conditions=None,
    behavior=None,
    lag_s: float = DECODING_LAG_S,
) -> tuple[dict, dict]:
    """All metrics the given arrays support, for one session.

    Args:
        spikes: int counts [B, T, N]. rates_hz: float Hz [B, T, N], finite.
        bin_size: s. heldout: bool [N] or None. eval_trials: bool [B] or None (= all trials).
        truth_hz: float Hz [B, T, N] true rates (NaN where unknown) or None.
        conditions: [B] condition labels or None. behavior: {name: float [B, T, D]} or None.
        lag_s: s, behaviour at bin t is decoded from rates at bin t - round(lag_s / bin_size).
    Returns:
        (metrics: {key: float}, skipped: {key: reason}).
    """
    k = np.asarray(spikes, dtype=np.float64)
    r = np.asarray(rates_hz, dtype=np.float64) * bin_size  # per bin
    n_trials, _, n_units = k.shape
    ev = np.ones(n_trials, bool) if eval_trials is None else np.asarray(eval_trials, bool)
    has_split = not ev.all()
    ho = np.zeros(n_units, bool) if heldout is None else np.asarray(heldout, bool)
    out, skipped = {}, {}

    def attempt(key, fn):
        try:
            out[key] = float(fn())
        except M.MetricInputError as exc:
            skipped[key] = str(exc)

    smooth = smoothing_rates(k, bin_size, SMOOTHING_SIGMA_S)  # Hz
    if truth_hz is not None:
        truth = np.asarray(truth_hz, dtype=np.float64)
        attempt("r2_truth", lambda: M.r2_per_neuron(r / bin_size, truth)[1])
        attempt("r2_truth_smoothing", lambda: M.r2_per_neuron(smooth, truth)[1])
        if ho.any():
            attempt(
                "r2_truth_heldout_eval",
                lambda: M.r2_per_neuron(r[ev][..., ho] / bin_size, truth[ev][..., ho])[1],
            )
            if not ho.all():
                attempt(
                    "r2_truth_heldin",
                    lambda: M.r2_per_neuron(r[..., ~ho] / bin_size, truth[..., ~ho])[1],
                )
                attempt(
                    "co_bps_truth", lambda: M.co_bps(truth[ev][..., ho] * bin_size, k[ev][..., ho])
                )
    attempt("bps", lambda: M.bits_per_spike(r, k))
    if ho.any():
        attempt("bps_heldin", lambda: M.bits_per_spike(r[..., ~ho], k[..., ~ho]))
        if ho.all():
            skipped["co_bps"] = "every unit is held out, so nothing predicts them"
        else:
            attempt("co_bps", lambda: M.co_bps(r[ev][..., ho], k[ev][..., ho]))
            attempt(
                "co_bps_smoothing",
                lambda: M.co_bps(_glm_baseline(k, ho, ev, has_split, bin_size), k[ev][..., ho]),
            )
    else:
        skipped["co_bps"] = "no held-out units (a boolean units column such as NLB's 'heldout')"
    if conditions is not None:
        cond = np.asarray(conditions)
        labels, psth = M.condition_average(smooth * bin_size, cond)
        attempt("psth_r2", lambda: M.psth_r2(r[ev], psth, cond[ev], labels))
    decode_eval = ev if has_split else (np.arange(n_trials) % 5 == 4)
    lag = int(round(lag_s / bin_size))
    for name, values in (behavior or {}).items():
        for key, x in ((f"decoding_r2_{name}", r), (f"decoding_r2_{name}_smoothing", smooth)):
            attempt(
                key,
                lambda x=x, values=values: M.ridge_decoding_r2(
                    x, values, ~decode_eval, decode_eval, lag_bins=lag
                ),
            )
    return out, skipped


def _glm_baseline(k, ho, ev, has_split: bool, bin_size: float) -> np.ndarray:
    """NLB's smoothing baseline on the eval trials [E, T, N_out] per bin: the GLM is trained on the
    other trials, or without an eval split cross-fitted over 5 blocks of trials (never in-sample)."""
    if has_split:
        return smoothing_baseline(
            k[~ev][..., ~ho], k[~ev][..., ho], k[ev][..., ~ho], bin_size, SMOOTHING_SIGMA_S
        )
    fold = np.arange(k.shape[0]) % min(5, k.shape[0])
    if fold.max() == 0:
        raise M.MetricInputError(
            "co_bps_smoothing: one trial only; the baseline GLM needs other trials to train on"
        )
    out = np.zeros(k.shape[:2] + (int(ho.sum()),))
    for f in range(fold.max() + 1):
        test = fold == f
        out[test] = smoothing_baseline(
            k[~test][..., ~ho], k[~test][..., ho], k[test][..., ~ho], bin_size, SMOOTHING_SIGMA_S
        )
    return out


def forward_metrics(
    spikes, rates_hz, truth_hz, bin_size: float, *, heldout=None, eval_trials=None
) -> tuple[dict, dict]:
    """NLB's forward-prediction bits per spike over the forward bins of the evaluation trials.

    Args:
        spikes: counts [B, T_f, N] of the forward bins; rates_hz: float Hz [B, T_f, N] (NaN
            where the file has no sample); truth_hz: true rates Hz [B, T_f, N] or None.
        bin_size: s. heldout: bool [N] or None. eval_trials: bool [B] or None (= all trials).
    Returns:
        (``fp_bps`` (held-in and held-out units together, NLB's ``fp-bps``), ``fp_bps_heldin``
        and ``fp_bps_heldout`` with held-out units, ``fp_bps_truth`` (the true rates', the
        ceiling) on simulated sessions; skipped: {key: reason}).
    """
    k = np.asarray(spikes, dtype=np.float64)
    r = np.asarray(rates_hz, dtype=np.float64) * bin_size
    ev = np.ones(k.shape[0], bool) if eval_trials is None else np.asarray(eval_trials, bool)
    sel = ev & np.isfinite(r).all(axis=(1, 2))
    out, skipped = {}, {}
    if not sel.any():
        return out, {
            "fp_bps": "no evaluation trial has rates over the forward bins (a later trial's "
            "window overlaps them)"
        }
    ho = np.zeros(k.shape[2], bool) if heldout is None else np.asarray(heldout, bool)

    def attempt(key, fn):
        try:
            out[key] = float(fn())
        except M.MetricInputError as exc:
            skipped[key] = str(exc)

    attempt("fp_bps", lambda: M.fp_bps(r[sel], k[sel]))
    if ho.any() and not ho.all():
        attempt("fp_bps_heldin", lambda: M.fp_bps(r[sel][..., ~ho], k[sel][..., ~ho]))
        attempt("fp_bps_heldout", lambda: M.fp_bps(r[sel][..., ho], k[sel][..., ho]))
    if truth_hz is not None:
        t = np.asarray(truth_hz, dtype=np.float64) * bin_size
        if np.isfinite(t[sel]).all():
            attempt("fp_bps_truth", lambda: M.fp_bps(t[sel], k[sel]))
    return out, skipped


# ----------------------------------------------------------------------------- files
def read_data_config(enriched):
    """The ``DataConfig`` the rates of an enriched file were fitted with (its provenance table).

    Uses ``config.data.*`` rows, else the top-level ``bin_size``, ``align_to``, ``window``,
    ``window_length``, ``overlap`` rows that ``write_results`` always stores.
    """
    from .io.open import open_nwb

    with open_nwb(enriched) as nwbfile:
        return _provenance_config(nwbfile, enriched)


def _provenance_config(nwbfile, name):
    import dataclasses
    import typing

    from .config import DataConfig, RunConfig

    module = _lfads_module(nwbfile, name)
    if "provenance" not in module.data_interfaces:
        raise NwbContentError(
            f"{name}: processing/lfads has no 'provenance' table, so the data options of the "
            f"fit are unknown. Evaluate the run directory (its config.yaml) instead."
        )
    table = module["provenance"]
    rows = dict(
        zip((str(k) for k in table["key"].data[:]), (str(v) for v in table["value"].data[:]))
    )
    hints = typing.get_type_hints(DataConfig)
    values = {}
    for fld in dataclasses.fields(DataConfig):
        raw = rows.get(f"config.data.{fld.name}", rows.get(fld.name))
        if raw is not None:  # text rows: JSON except for strings
            values[fld.name] = (
                None
                if raw == "null"
                else raw
                if hints[fld.name] in (str, str | None)
                else json.loads(raw)
            )
    return RunConfig.from_dict({"data": values}, source=f"{name}: provenance").data


def _lfads_module(nwbfile, path):
    if (
        "lfads" not in nwbfile.processing
        or "rates" not in nwbfile.processing["lfads"].data_interfaces
    ):
        raise EvaluationError(
            f"{path}: no processing/lfads/rates (processing modules: "
            f"{sorted(nwbfile.processing)}), so there is nothing to evaluate. Pass a run directory "
            f"or a '.lfads.nwb' file written by 'nwb-lfads fit' or 'nwb-lfads infer'."
        )
    return nwbfile.processing["lfads"]


def behavior_candidates(nwbfile) -> list[str]:
    """Names of the file's TimeSeries that can be decoded as behaviour: all but those of
    ``processing/lfads`` and ``processing/ground_truth`` (the model's and the simulator's)."""
    from pynwb import TimeSeries

    ours = {"lfads", "ground_truth"}
    names = set()
    for obj in nwbfile.objects.values():
        if isinstance(obj, TimeSeries):
            parent = obj.parent
            if not (parent is not None and parent.name in ours and parent.parent is nwbfile):
                names.add(obj.name)
    return sorted(names)


def _behaviors(nwbfile, enriched, behavior) -> list[str]:
    """The series to decode: ``behavior`` (each checked), or the ``BEHAVIOR_SERIES`` present."""
    names = behavior_candidates(nwbfile)
    if behavior is None:
        return [n for n in BEHAVIOR_SERIES if n in names]
    for name in behavior:
        if name not in names:
            raise SelectionError(
                f"{enriched}: no TimeSeries named {name!r} to decode (--behavior); candidates: "
                f"{', '.join(names) or 'none'}."
            )
    return list(dict.fromkeys(behavior))


def _layout(nwbfile, enriched, cfg, eval_default: str | None, behavior=None):
    """What the file holds: held-out column, eval-trials spec, behaviour series."""

    heldout, units = cfg.heldout_units, nwbfile.units
    if heldout is None and units is not None and "heldout" in units.colnames:
        heldout = "heldout" if np.asarray(units["heldout"].data[:]).dtype.kind in "bi" else None
    columns = list(nwbfile.trials.colnames) if nwbfile.trials is not None else []
    default = TrialSelector.parse(eval_default) if eval_default else None
    spec = cfg.eval_selector or (default if default and default.column in columns else None)
    spec = spec if cfg.align_to is not None else None  # continuous windows are not trials
    if spec is not None and spec.column not in columns:
        raise SelectionError(
            f"{enriched}: eval trials '{spec}' name a column that is not in the trials table "
            f"(columns: {columns}). Fix data.eval_trials."
        )
    return heldout, spec, _behaviors(nwbfile, enriched, behavior)


def _read(enriched: Path, data_cfg, eval_default: str | None, behavior=None):
    """Open once: config, layout, binned spikes and the LFADS and true rates at the same bins."""
    import dataclasses

    from .io.ground_truth import read_ground_truth
    from .io.open import open_nwb
    from .io.read import read_session, reader_options

    with open_nwb(enriched) as nwbfile:
        _lfads_module(nwbfile, enriched)
        data_cfg = data_cfg or _provenance_config(nwbfile, enriched)
        heldout, spec, behaviors = _layout(nwbfile, enriched, data_cfg, eval_default, behavior)
        cfg = dataclasses.replace(data_cfg, heldout_units=heldout)
        opts = {**reader_options(cfg), "behavior": behaviors}
        if spec:
            opts["include_columns"] = [spec.column]
        try:
            ds = read_session(nwbfile, **opts)
        except NwbLfadsError as exc:  # name the file, not the in-memory NWBFile
            raise type(exc)(
                str(exc).replace(f"<NWBFile {nwbfile.identifier}>", str(enriched))
            ) from None
        rates = read_ground_truth(nwbfile, ds, module="lfads", series="rates").values
        truth = read_ground_truth(nwbfile, ds)
    return cfg, spec, behaviors, ds, rates, None if truth is None else truth.values


def _eval_mask(ds, spec: TrialSelector | None, what: str):
    """bool [n_trials] of the trials ``spec`` selects (None: no selection)."""
    if spec is None:
        return None
    coord = ds.coords[spec.column].values
    match = spec.matches(coord)
    if not match.any():
        raise SelectionError(
            f"{what}: no trial has {spec.column} = {spec.value!r} (values: "
            f"{sorted({str(v) for v in coord})[:10]}). Fix data.eval_trials."
        )
    return match


def evaluate_session(
    enriched,
    data_cfg=None,
    *,
    targets=None,
    dataset: str | None = None,
    behavior=None,
    lag: float | None = None,
    nlb_submission=None,
) -> dict:
    """Evaluate one enriched NWB file.

    Args:
        enriched: path of a file with ``processing/lfads/rates``.
        data_cfg: the ``DataConfig`` of the fit (bin size, alignment, window, held-out units,
            eval trials); None: from the file's provenance table.
        targets, dataset: optional nlb_tools targets file and its dataset name.
        behavior: names of TimeSeries to decode (None: the ``BEHAVIOR_SERIES`` the file has);
            lag: s, decoding lag (None: ``DECODING_LAG_S``).
        nlb_submission: write the rates as an NLB submission file there (the group named after
            ``dataset``, one of ``NLB_DATASETS``), or None.
    Returns:
        dict: ``session``, ``file``, ``n_trials``, ``n_units``, ``n_heldout``, ``n_eval_trials``,
        ``eval_trials``, ``metrics`` {key: float}, ``skipped`` {key: reason}; with behaviour
        series, ``decoding_lag_s``; with ``nlb_submission``, ``submission`` (path) and
        ``submission_dataset`` (group).
    Raises:
        SelectionError: a ``behavior`` name that is not a TimeSeries of the file (the message
        lists the candidates); ConfigError: a lag not shorter than the trials.
    """
    enriched = Path(enriched)
    lag = DECODING_LAG_S if lag is None else _check_lag(lag)
    cfg, spec, behaviors, ds, rates, truth = _read(
        enriched, data_cfg, "split=val" if targets or nlb_submission else None, behavior
    )
    n_bins = ds.sizes["time"]
    if behaviors and abs(round(lag / cfg.bin_size)) >= n_bins:
        raise ConfigError(
            f"{enriched}: --lag {lag:g} s is not shorter than the trials ({n_bins} bins of "
            f"{cfg.bin_size:g} s); pass a lag below {n_bins * cfg.bin_size:g} s."
        )
    ev = _eval_mask(ds, spec, str(enriched))
    heldout = ds.coords["heldout"].values.astype(bool) if "heldout" in ds.coords else None
    n_fwd = int(ds.attrs.get("forward_bins", 0))
    t_obs = ds.sizes["time"] - n_fwd
    forward = None  # (spikes, rates Hz, truth Hz or None) of the forward bins
    if n_fwd:
        forward = (
            ds.spikes.values[:, t_obs:],
            rates[:, t_obs:],
            None if truth is None else truth[:, t_obs:],
        )
        ds, rates = ds.isel(time=slice(0, t_obs)), rates[:, :t_obs]
        truth = None if truth is None else truth[:, :t_obs]
    found, skipped, written = {}, {}, {}
    if targets is not None or nlb_submission is not None:
        what = "scoring --targets" if nlb_submission is None else "an NLB submission"
        if heldout is None or not heldout.any() or ev is None:
            raise EvaluationError(
                f"{enriched}: {what} needs held-out units and evaluation trials "
                f"(fit with --heldout-units COL and --eval-trials split=val, or a 'split' "
                f"trials column)."
            )
        split = np.asarray(ds.coords[spec.column].values).astype(str)
        train = (
            (split == "train") & ~ev if ((split == "train") & ~ev).any() else ~ev
        )  # NLB: split 'train'
    if nlb_submission is not None:
        group = nlb_group_name(dataset, cfg.bin_size)
        fwd_rates = None if forward is None else forward[1]
        missing = ~np.isfinite(rates).all(axis=(1, 2)) & (ev | train)
        if fwd_rates is not None:  # the forward bins are submitted for the evaluation trials
            missing |= ~np.isfinite(fwd_rates).all(axis=(1, 2)) & ev
        if missing.any():
            raise NwbContentError(
                f"{enriched}: processing/lfads/rates has no rates for {int(missing.sum())} "
                f"trials of the split (ids {ds.trial.values[missing][:5].tolist()}); a submission "
                f"needs every trial. Run 'nwb-lfads infer' on the session first."
            )
        arrays = submission_arrays(rates, cfg.bin_size, heldout, ev, train, fwd_rates)
        written = {
            "submission": str(write_submission(nlb_submission, group, arrays)),
            "submission_dataset": group,
        }
    if targets is not None:
        found, skipped = score_targets(
            targets,
            rates,
            cfg.bin_size,
            heldout,
            ev,
            train,
            dataset,
            None if forward is None else forward[1],
        )
    finite = np.isfinite(rates)
    units = finite.any(axis=(0, 1))
    trials = finite[..., units].all(axis=(1, 2))
    if not trials.any():
        raise NwbContentError(
            f"{enriched}: processing/lfads/rates has no sample at the bins of any trial read with "
            f"bin_size={cfg.bin_size}, align_to={cfg.align_to}, window={cfg.window}. Evaluate the run "
            f"directory (its config.yaml) or check the file's provenance table."
        )
    sel = ds.isel(trial=np.flatnonzero(trials), unit=np.flatnonzero(units))
    conditions = (
        sel.coords[CONDITION_COLUMN].values
        if CONDITION_COLUMN in sel.coords and cfg.align_to
        else None
    )
    more, why = session_metrics(
        sel.spikes.values,
        rates[trials][..., units],
        cfg.bin_size,
        heldout=None if heldout is None else heldout[units],
        eval_trials=None if ev is None else ev[trials],
        truth_hz=None if truth is None else truth[trials][..., units],
        conditions=conditions,
        behavior={name: sel[name].values for name in behaviors if name in sel},
        lag_s=lag,
    )
    found, skipped = {**more, **found}, {**why, **skipped}
    if forward is not None:
        more, why = forward_metrics(*forward, cfg.bin_size, heldout=heldout, eval_trials=ev)
        found, skipped = {**found, **more}, {**skipped, **why}
    if truth is None:
        skipped["r2_truth"] = "no processing/ground_truth/rates (only simulated sessions have it)"
    out = {
        "session": str(ds.attrs.get("session_id")),
        "file": str(enriched),
        "n_trials": int(trials.sum()),
        "n_units": int(units.sum()),
        "n_heldout": int(0 if heldout is None else heldout[units].sum()),
        "n_eval_trials": int(trials.sum() if ev is None else ev[trials].sum()),
        "eval_trials": str(spec) if spec else "all",
    }
    if behaviors:
        out["decoding_lag_s"] = lag
    if "targets_dataset" in found:
        out["targets_dataset"] = found.pop("targets_dataset")
    return {**out, **written, "metrics": found, "skipped": skipped}


def _run_files(rd: RunDir) -> list[Path]:
    """The enriched files of a run: ``*.lfads.nwb``, else (``--in-place`` runs) the inputs
    listed in sessions.json."""
    return rd.outputs() or [p for p in rd.listed_sources() if p.is_file()]


def _check_lag(lag) -> float:
    if isinstance(lag, bool) or not isinstance(lag, (int, float)) or not np.isfinite(lag):
        raise ConfigError(f"--lag {lag!r}: expected a finite number of seconds, e.g. 0.1.")
    return float(lag)


def evaluate(
    path,
    *,
    targets=None,
    dataset: str | None = None,
    write: bool = True,
    behavior=None,
    lag: float | None = None,
    nlb_submission=None,
) -> dict:
    """Evaluate a run directory (every session), one enriched NWB file or an NLB submission.

    Args:
        path: a RUN_DIR written by ``fit`` (``config.yaml``, ``sessions.json``, ``*.lfads.nwb``),
            an NWB file with ``processing/lfads``, or an NLB submission .h5 (scored against
            ``targets``, :func:`nwb_lfads.nlb_submission.score_submission`).
        targets: optional nlb_tools targets HDF5; dataset: its group name (default: inferred).
        write: write ``evaluation.json`` (RUN_DIR) or ``<stem>.evaluation.json`` (atomically).
        behavior, lag: behaviour series to decode and the lag in seconds
            (:func:`evaluate_session`).
        nlb_submission: write the rates as an NLB submission .h5 there, group ``dataset``
            (required; one of ``nlb_targets.NLB_DATASETS``); the run must have one session.
    Returns:
        dict: ``path``, ``sessions`` (one dict per session, see :func:`evaluate_session`),
        ``overall`` (each metric's mean over the sessions that have it), ``written`` (path or None).
    Raises:
        EvaluationError / RunDirError / InputFileError: not a run directory nor an enriched file;
        TargetsError: targets that match no session; an unknown NLB ``dataset``.
    """

    p = Path(path).expanduser()
    if nlb_submission is not None:
        if dataset is None:
            raise TargetsError(
                f"--nlb-submission {nlb_submission}: name the NLB dataset with --dataset "
                f"(e.g. mc_maze_small)."
            )
        nlb_group_name(dataset, 0.005)  # an unknown name fails before any reading
    if p.is_file() and is_submission(p):
        sessions = score_submission(p, targets, dataset)
        return _report(p, sessions, write)
    if p.is_dir():
        rd = RunDir(p)
        files = _run_files(rd)
        if not files:
            raise RunDirError(
                f"{p}: not a run directory (no *.lfads.nwb, no sessions.json). Pass the --out folder "
                f"of 'nwb-lfads fit', or one enriched .lfads.nwb file."
            )
        data_cfg = rd.read_config().data if rd.has_config() else None
        cfgs = [data_cfg for _ in files]
    elif p.exists():
        files, cfgs = [p], [None]
    else:
        raise InputFileError(
            f"{p}: no such run directory or NWB file. Pass the --out folder of 'nwb-lfads fit' "
            f"or an enriched .lfads.nwb file."
        )
    if nlb_submission is not None and len(files) > 1:
        raise EvaluationError(
            f"{p}: holds {len(files)} sessions; an NLB submission is one session. Pass that "
            f"session's .lfads.nwb file instead of the run directory."
        )
    sessions, failed = [], []
    for f, c in zip(files, cfgs):
        try:
            sessions.append(
                evaluate_session(
                    f,
                    c,
                    targets=targets,
                    dataset=dataset,
                    behavior=behavior,
                    lag=lag,
                    nlb_submission=nlb_submission,
                )
            )
        except TargetsError as exc:  # several sessions: the targets fit some of them
            if targets is None or len(files) == 1:
                raise
            failed.append(exc)
            sessions.append(evaluate_session(f, c, behavior=behavior, lag=lag))
            sessions[-1]["skipped"]["targets"] = str(exc)
    if failed and len(failed) == len(files):
        raise failed[0]
    return _report(p, sessions, write)


def _report(p: Path, sessions: list[dict], write: bool) -> dict:
    """The report of :func:`evaluate` (overall means; the JSON written atomically)."""
    keys = list(
        dict.fromkeys(k for s in sessions for k, v in s["metrics"].items() if isinstance(v, float))
    )
    overall = {
        k: float(np.mean([s["metrics"][k] for s in sessions if k in s["metrics"]])) for k in keys
    }
    report = {"path": str(p), "sessions": sessions, "overall": overall, "written": None}
    if write:
        out = evaluation_path(p)
        report["written"] = str(out)
        plain = json.loads(json.dumps(report), parse_constant=lambda _: None)  # NaN -> null
        write_text_atomic(out, json.dumps(plain, indent=2, allow_nan=False))
    return report


def format_evaluation(report: dict) -> str:
    """A plain-text table: one row per metric, one column per session (and ``overall``)."""
    sessions = report["sessions"]
    keys = list(report["overall"])
    head = (
        ["metric"] + [s["session"] for s in sessions] + (["overall"] if len(sessions) > 1 else [])
    )
    rows = [
        head,
        ["trials (eval)"] + [f"{s['n_trials']} ({s['n_eval_trials']})" for s in sessions],
        ["units (held out)"] + [f"{s['n_units']} ({s['n_heldout']})" for s in sessions],
    ]
    for key in keys:
        label = LABELS.get(key) or (
            "  smoothing baseline"
            if key.endswith("_smoothing")
            else f"decoding R^2, {key[len('decoding_r2_') :]}"
        )
        cells = [f"{s['metrics'][key]:.4f}" if key in s["metrics"] else "-" for s in sessions]
        rows.append(
            [label] + cells + ([f"{report['overall'][key]:.4f}"] if len(sessions) > 1 else [])
        )
    for row in rows[1:3]:
        row += [""] * (len(head) - len(row))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
