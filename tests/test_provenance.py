"""Provenance rows: nested config flattened to dotted key/value text, no dictionaries in cells."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import xarray as xr

import nwb_lfads
from nwb_lfads.io.provenance import as_text, module_description, provenance_rows, provenance_table


@dataclasses.dataclass(frozen=True)
class _Model:
    gen_dim: int = 64
    window: tuple = (-0.25, 0.45)


def _results():
    return xr.Dataset(
        {"rates": (("trial", "time", "unit"), np.zeros((3, 2, 1), np.float32))},
        attrs={"bin_size": 0.01, "align_to": None, "session_id": "s1"},
    )


def test_rows_flatten_dataclasses_nested_dicts_and_lists_of_dicts():
    prov = {
        "config": {"model": _Model(), "sessions": [{"name": "a"}, {"name": "b"}]},
        "metrics": {"valid_loss": np.float32(0.5), "epoch": np.int64(3)},
    }
    rows = provenance_rows(_results(), prov, "x.nwb")
    assert rows["nwb_lfads_version"] == nwb_lfads.__version__
    assert rows["config.model.gen_dim"] == 64 and rows["config.model.window"] == [-0.25, 0.45]
    assert rows["config.sessions.1.name"] == "b"
    assert rows["metrics.epoch"] == 3 and isinstance(rows["metrics.epoch"], int)
    assert rows["align_to"] is None and rows["n_trials"] == 3 and rows["source"] == "x.nwb"
    texts = [as_text(v) for v in rows.values()]
    assert not any("{" in t for t in texts)  # nwbinspector flags dicts in table cells
    assert as_text(None) == "null" and as_text([1, 2]) == "[1, 2]" and as_text("a") == "a"


def test_table_and_description_hold_every_row():
    rows = provenance_rows(_results(), {"metrics": {"valid_loss": 0.25}}, "x.nwb")
    df = provenance_table(rows).to_dataframe()
    assert (
        list(df["key"]) == list(rows)
        and df.set_index("key")["value"]["metrics.valid_loss"] == "0.25"
    )
    desc = module_description(rows, ["rates", "factors"])
    assert "valid_loss=0.25" in desc and "rates, factors" in desc
    assert json.loads(desc.split("the same as JSON: ", 1)[1]) == json.loads(json.dumps(rows))
    rows = provenance_rows(
        _results(), {"final_metrics": {"epoch": 5}, "config": {"epochs": 9}}, "x.nwb"
    )
    assert "Final metrics: epoch=5." in module_description(rows, ["rates"])
