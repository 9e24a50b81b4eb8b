"""Fuzzed inputs: malformed NWB files never give a traceback.

A small valid session is written once with pynwb; each example copies it and breaks it with
h5py the way real files are broken (a ragged index past the data, trials that stop before they
start, duplicate unit ids, empty tables, wrong dtypes, text where numbers belong, NaN and huge
times). ``inspect``, the reader and a one-epoch ``fit`` must end in exit 0, or exit 2 with one
``Error:`` line (the reader: a result or an ``NwbLfadsError``), never anything else.
"""

from __future__ import annotations

import shutil
import warnings

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from nwb_lfads.cli.main import main

from nwb_lfads.errors import NwbLfadsError

N_UNITS, N_TRIALS = 5, 24
TINY = [
    *("--set", "model.gen_dim=8", "--set", "model.ic_enc_dim=4", "--set", "model.ci_enc_dim=4"),
    *("--set", "model.con_dim=4", "--set", "model.fac_dim=3", "--set", "model.ic_dim=4"),
    *("--set", "model.co_dim=1", "--set", "train.batch_size=8", "--set", "train.n_samples=2"),
    *("--align-to", "move_onset_time", "--window", "0", "0.2", "--max-epochs", "1"),
    *("--quiet", "--no-plots"),
]
FUZZ = dict(
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A valid session: 5 units over [0, 30] s, 24 trials of 1 s with ``move_onset_time``."""
    from pynwb import NWBHDF5IO
    from pynwb.testing.mock.file import mock_NWBFile

    rng = np.random.default_rng(0)
    nwbfile = mock_NWBFile()
    for _ in range(N_UNITS):
        nwbfile.add_unit(spike_times=np.sort(rng.uniform(0.0, 30.0, 300)))
    nwbfile.add_trial_column("move_onset_time", "movement onset (s)")
    for i in range(N_TRIALS):
        nwbfile.add_trial(start_time=i + 1.0, stop_time=i + 1.9, move_onset_time=i + 1.3)
    path = tmp_path_factory.mktemp("fuzz") / "base.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def _replace(f: h5py.File, name: str, data) -> None:
    """Put ``data`` where dataset ``name`` was, keeping its attributes (neurodata type, ...)
    and the references of the ragged indices that point to it."""
    old = f[name]
    attrs = dict(old.attrs)
    pointing = [
        ds
        for ds in old.parent.values()
        if isinstance(ds, h5py.Dataset)
        and isinstance(ds.attrs.get("target"), h5py.Reference)
        and f[ds.attrs["target"]].name == old.name
    ]
    del f[name]
    new = f.create_dataset(name, data=data)
    for key, value in attrs.items():
        new.attrs[key] = value
    for ds in pointing:
        ds.attrs["target"] = new.ref


def _text(values) -> np.ndarray:
    """Numbers as text, the first one a word."""
    words = ["soon"] + [str(v) for v in values[1:]]
    return np.array([w.encode() for w in words], dtype=h5py.string_dtype())


# Each break: name -> function(f, draw) changing the open file; ``draw`` gives numbers.
def ragged_index_past_data(f, x):
    index = f["units/spike_times_index"][:]
    index[-1] = index[-1] + 1 + int(x * 1000)
    _replace(f, "units/spike_times_index", index)


def ragged_index_decreasing(f, x):
    index = f["units/spike_times_index"][:]
    index[1] = index[0] - 1 - int(x * 100)
    _replace(f, "units/spike_times_index", index)


def index_longer_than_ids(f, x):
    index = f["units/spike_times_index"][:]
    _replace(f, "units/spike_times_index", np.concatenate([index, index[-1:]]))


def stop_before_start(f, x):
    stop = f["intervals/trials/stop_time"][:]
    start = f["intervals/trials/start_time"][:]
    k = 1 + int(x * (N_TRIALS - 1))
    stop[:k] = start[:k] - 0.5
    _replace(f, "intervals/trials/stop_time", stop)


def duplicate_unit_ids(f, x):
    _replace(f, "units/id", np.zeros(N_UNITS, dtype=np.int64))


def duplicate_trial_ids(f, x):
    _replace(f, "intervals/trials/id", np.full(N_TRIALS, 3, dtype=np.int64))


def empty_units(f, x):
    for name in ("spike_times", "spike_times_index", "id"):
        dtype = f[f"units/{name}"].dtype
        _replace(f, f"units/{name}", np.zeros(0, dtype=dtype))


def empty_trials(f, x):
    for name in ("start_time", "stop_time", "move_onset_time", "id"):
        dtype = f[f"intervals/trials/{name}"].dtype
        _replace(f, f"intervals/trials/{name}", np.zeros(0, dtype=dtype))


def integer_spike_times(f, x):
    times = f["units/spike_times"][:]
    _replace(f, "units/spike_times", (times * (1 + x)).astype(np.int64))


def float_index(f, x):
    _replace(f, "units/spike_times_index", f["units/spike_times_index"][:] + 0.5)


def text_spike_times(f, x):
    _replace(f, "units/spike_times", _text(f["units/spike_times"][:]))


def text_event_times(f, x):
    values = f["intervals/trials/move_onset_time"][:]
    _replace(f, "intervals/trials/move_onset_time", _text(values))


def text_start_times(f, x):
    _replace(f, "intervals/trials/start_time", _text(f["intervals/trials/start_time"][:]))


def nan_and_huge_times(f, x):
    times = f["units/spike_times"][:]
    times[:: 1 + int(x * 50)] = np.nan
    times[-1] = 1e12 * (1 + x)
    _replace(f, "units/spike_times", times)


def nan_event_times(f, x):
    values = f["intervals/trials/move_onset_time"][:]
    values[: 1 + int(x * (N_TRIALS - 1))] = np.nan
    _replace(f, "intervals/trials/move_onset_time", values)


def two_dimensional_times(f, x):
    times = f["units/spike_times"][:]
    _replace(f, "units/spike_times", times[: times.size // 2 * 2].reshape(-1, 2))


def negative_times(f, x):
    _replace(f, "units/spike_times", f["units/spike_times"][:] - 100.0 * (1 + x))


def missing_spike_times_index(f, x):
    del f["units/spike_times_index"]


BREAKS = {
    fn.__name__: fn
    for fn in (
        ragged_index_past_data,
        ragged_index_decreasing,
        index_longer_than_ids,
        stop_before_start,
        duplicate_unit_ids,
        duplicate_trial_ids,
        empty_units,
        empty_trials,
        integer_spike_times,
        float_index,
        text_spike_times,
        text_event_times,
        text_start_times,
        nan_and_huge_times,
        nan_event_times,
        two_dimensional_times,
        negative_times,
        missing_spike_times_index,
    )
}

breaks = st.lists(
    st.tuples(st.sampled_from(sorted(BREAKS)), st.floats(0.0, 1.0)),
    min_size=1,
    max_size=2,
    unique_by=lambda b: b[0],
)


def broken_copy(base, folder, chosen) -> str:
    path = folder / ("_".join(name for name, _ in chosen)[:100] + ".nwb")
    shutil.copy(base, path)
    with h5py.File(path, "r+") as f:
        for name, x in chosen:
            BREAKS[name](f, x)
    return str(path)


def check_cli(result) -> None:
    """Exit 0, or exit 2 with exactly one ``Error:`` line; never a traceback."""
    assert "Traceback" not in result.output, result.output
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exc_info)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    if result.exit_code == 2:
        assert len(errors) == 1 and result.output.rstrip().endswith(errors[0]), result.output
    else:
        assert not errors, result.output


@settings(max_examples=30, **FUZZ)
@given(chosen=breaks)
def test_inspect_and_the_reader_never_crash(base, tmp_path_factory, chosen):
    from nwb_lfads.io.read import read_session

    path = broken_copy(base, tmp_path_factory.mktemp("case"), chosen)
    check_cli(CliRunner().invoke(main, ["inspect", path]))
    for kwargs in ({"align_to": "move_onset_time"}, {"window_length": 1.0, "overlap": 0.2}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = read_session(path, bin_size=0.05, **kwargs)
            except NwbLfadsError as exc:
                assert "\n" not in str(exc)
                continue
        assert ds["spikes"].ndim == 3 and (ds["spikes"].values >= 0).all()


@settings(max_examples=4, **FUZZ)
@given(chosen=breaks)
@example(chosen=[("nan_event_times", 0.3), ("negative_times", 0.5)])  # reads, then trains
def test_fit_never_crashes(base, tmp_path_factory, chosen):
    folder = tmp_path_factory.mktemp("fit")
    path = broken_copy(base, folder, chosen)
    result = CliRunner().invoke(main, ["fit", path, "--out", str(folder / "run"), *TINY])
    check_cli(result)
    if result.exit_code == 0:
        assert list((folder / "run").glob("*.lfads.nwb"))
