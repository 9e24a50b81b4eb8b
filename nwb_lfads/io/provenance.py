"""Provenance of LFADS results: what produced them, flattened to key/value text.

A nested dict (``{"config": {...}, "metrics": {...}}``; dataclasses accepted) becomes rows with
dotted keys (``config.model.gen_dim``) and text values (JSON for non-strings). Stored in NWB as a
``DynamicTable`` named ``provenance`` with text columns ``key`` and ``value`` (nwbinspector
flags dictionaries inside table cells, so nested values are never stored as one JSON cell) and
repeated as JSON in the ``processing/lfads`` description, which every viewer shows.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

import numpy as np


def _plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, datetime.datetime, datetime.date)):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _flatten(prefix: str, value, rows: dict) -> None:
    value = _plain(value)
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, rows)
    elif isinstance(value, list) and any(isinstance(_plain(v), (dict, list)) for v in value):
        for i, sub in enumerate(value):
            _flatten(f"{prefix}.{i}", sub, rows)
    else:
        rows[prefix] = value


def provenance_rows(results, provenance: dict | None, source_name: str = "") -> dict:
    """Flat ``{key: plain value}`` of what produced these results (version, data, config, metrics)."""
    from .. import __version__

    rows = {
        "nwb_lfads_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "source": source_name,
    }
    for key in ("session_id", "bin_size", "align_to", "window", "window_length", "overlap"):
        if key in results.attrs:
            _flatten(key, results.attrs[key], rows)
    rows["n_trials"] = int(results.sizes["trial"])
    for key in ("n_samples", "push_mean"):  # how the posterior was summarised (infer's attrs)
        if key in results.attrs:
            _flatten(f"inference.{key}", results.attrs[key], rows)
    for key in ("external_inputs", "external_input_columns", "external_input_sources"):
        if key in results.attrs:  # the known inputs the model was given (infer's attrs)
            rows[key] = _plain(results.attrs[key])
    _flatten("", provenance or {}, rows)
    return rows


def as_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def provenance_table(rows: dict):
    from hdmf.common import DynamicTable

    table = DynamicTable(
        name="provenance",
        description=(
            "How these LFADS results were produced: one row per setting (dotted keys for nested "
            "configuration, e.g. config.model.gen_dim), values as text (JSON for numbers and lists)."
        ),
    )
    table.add_column(name="key", description="setting name, dotted for nested configuration")
    table.add_column(name="value", description="value as text (JSON for non-strings)")
    for key, value in rows.items():
        table.add_row(key=key, value=as_text(value))
    return table


def module_description(rows: dict, series: list[str]) -> str:
    """One paragraph for ``processing/lfads``: what it holds, up to 8 final metrics (rows under a
    ``metrics`` or ``final_metrics`` key), then every row as JSON."""
    metrics = {
        k.split(".", 1)[1]: v
        for k, v in rows.items()
        if "." in k and k.split(".", 1)[0] in ("metrics", "final_metrics")
    }
    shown = "; ".join(f"{k}={as_text(v)}" for k, v in list(metrics.items())[:8])
    return (
        f"LFADS (latent factor analysis via dynamical systems) results written by nwb-lfads "
        f"{rows['nwb_lfads_version']}: {', '.join(series)}."
        + (f" Final metrics: {shown}." if shown else "")
        + " The 'provenance' table lists the package version, the resolved configuration and "
        "the final metrics; the same as JSON: " + json.dumps(rows, default=str)
    )
