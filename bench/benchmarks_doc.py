"""Write docs/BENCHMARKS.md from the raw results in bench/results/ (standard library only).

    python bench/benchmarks_doc.py            # regenerate docs/BENCHMARKS.md
    python bench/benchmarks_doc.py --check    # exit 1 if the committed file is out of date

Every ``*.json`` (one JSON document: an object or a list of objects) and ``*.jsonl`` (one object
per line) file under ``bench/results/`` is read. A file is named
``<benchmark>_<host>_<YYYY-MM-DD>[_<tag>].json[l]``; the benchmark, host and date of each line
come from that name, except that a line whose ``bench`` field names another known benchmark
(e.g. ``reference_scan`` lines interleaved in a throughput series) is filed under it. Lines are
grouped by benchmark, one table each, rows in file order within files sorted by date and name,
so the output depends only on the results and is the same on every run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "BENCHMARKS.md"
LINK_PREFIX = "../bench/results/"  # from docs/ to the results

_NAME = re.compile(r"^(?P<stem>.+)_(?P<date>\d{4}-\d{2}-\d{2})(?:_(?P<tag>.+))?$")
_HASH = re.compile(r"\b[0-9a-f]{7,40}\b")

# benchmark -> (title, how to reproduce, what a line measures)
ABOUT = {
    "chaotic_rnn": (
        "Chaotic-RNN recovery",
        "python bench/chaotic_rnn.py --minutes 10 [--set KEY=VALUE ...]",
        "Mean per-neuron R^2 of the posterior-mean rates against the true rates of the "
        "TF LFADS chaotic-RNN benchmark (100 conditions x 10 trials, 50 neurons, 10 ms bins) "
        "after a wall-clock training budget; `new cond.` scores 100 conditions training never "
        "saw, `0-100 ms` the first window of each trial. Screens (`tag`) ran the same fit "
        "from a driver script.",
    ),
    "chaotic_oracle": (
        "Chaotic-RNN oracle (true dynamics known)",
        "python bench/chaotic_oracle.py",
        "R^2 of the maximum a posteriori initial state of each trial under the true network: "
        "what one trial's spikes can give.",
    ),
    "demo": (
        "nwb-lfads demo",
        "nwb-lfads demo --out DIR --quiet [--set KEY=VALUE ...]",
        "Three simulated sessions (40 / 55 / 70 units) of one chaotic RNN, one stitched "
        "model, 6-minute budget: R^2 of the inferred rates against the true rates per "
        "session and validation bits per spike.",
    ),
    "nlb_cosmoothing": (
        "Co-smoothing on simulated sessions",
        "python bench/nlb_cosmoothing.py --seed S",
        "80 units of a chaotic RNN, 20 held out, 400 trials (80 evaluation trials): co-bps "
        "of LFADS, of NLB's smoothing baseline and of the true rates (the ceiling).",
    ),
    "nlb_mc_maze_small": (
        "MC_Maze_Small co-smoothing",
        "python bench/nlb_mc_maze_small.py [--set KEY=VALUE ...]",
        "NLB's MC_Maze_Small test file with 27 of its 107 units marked held out and 20 of "
        "its 100 trials as evaluation trials, 5 ms bins.",
    ),
    "train_throughput": (
        "Training throughput",
        "python bench/train_throughput.py [--batch-size B] [--devices N] [--device cpu|gpu]",
        "Trials per second through complete optimizer steps (forward, backward, Adam) after "
        "compilation. `small` is the script's default model (50 neurons x 100 bins, encoders "
        "64, ic 64, generator 64, controller 32, co 4, factors 20); `MC_Maze-sized` is "
        "182 neurons x 140 bins, encoders 100, ic 100, generator 100, controller 80, co 4, "
        "factors 40.",
    ),
    "reference_scan": (
        "Reference scan (calibration point)",
        "python bench/reference_scan.py",
        "A bare JAX scan of the IC encoder and generator (plain `jax.grad`, optax Adam) that "
        "shares no code with the package: run it beside a throughput series to tell a fast "
        "host from a fast step.",
    ),
    "stitching": (
        "Multi-session stitching",
        "python bench/stitching.py --skip-throughput --seeds 5 --seconds S [--set KEY=VALUE ...]",
        "A suite of seeded scenarios (2-4 sessions of one chaotic RNN, 30-80 units, 10-40 "
        "conditions, one small session of 20-100 trials, the others 200-400): every session's "
        "R^2 against the true rates fitted jointly minus fitted alone, each fit the same "
        "training time (`s/fit`; from 2026-12-05 CPU seconds per JAX device, before that wall "
        "time). `small gain`: mean, min and sd over the seeds' small sessions, `positive` how "
        "many gained; `large worst`: the lowest gain of any large session; `accept`: small mean "
        ">= 0.10, min > 0, large worst >= -0.02. `1 vs 8 sessions trials/s`: a single session's "
        "training trials/s over eight stitched sessions' of the same total size (bar <= 1.10). "
        "`defaults` are those of the line's commit.",
    ),
    "transfer": (
        "A new recording day (transfer)",
        "nice -n 5 python bench/transfer.py --pretrain-minutes 5 --minutes 2 [--joint-minutes 10]",
        "One chaotic RNN recorded on two days with different neurons: day 1 320 trials x 50 "
        "units, fitted for `pretrain` minutes; day 2 40 trials x 40 units (20 conditions). Day "
        "2's R^2 against its true rates after `min` minutes of `transfer` onto day 1's frozen "
        "model (per read-in start: `aligned` onto day 1's condition averages, own-session "
        "`pcr`, `random`) and of a fresh `fit` of day 2 alone; `joint`: a stitched fit of both "
        "days for `joint` minutes (day 2 / day 1). `gain`: best transfer minus fresh (bar "
        "+0.10). Wall-clock budgets on the shared 2-core machine: `load` is the 1-minute load "
        "average before / after.",
    ),
    "external_inputs": (
        "External inputs (chaotic RNN with input pulses)",
        "python bench/external_inputs.py --minutes M",
        "`nwb-lfads simulate --kind chaotic-inputs` (100 conditions x 10 trials, 50 neurons, one "
        "input pulse per trial at a random time) fitted twice for the same training budget, "
        "without and with the external input `pulse_time`: R^2 of the posterior-mean rates "
        "against the true rates, and the mean absolute inferred input overall, in the 5 bins "
        "from each pulse and elsewhere. A `with - without` row compares the two fits of a run; "
        "`load` is the 1-minute load average at the start and end of the fit (2 cores).",
    ),
    "forward": (
        "Forward prediction (fp-bps)",
        "nice -n 5 python bench/forward.py --part sim|maze --minutes 5 [--seed S]",
        "NLB's fp-bps over the evaluation trials' forward bins (the 200 ms after each window, "
        "never encoder input; held-in and held-out units together, and each part). `sim`: one "
        "simulated chaotic-RNN session (20 conditions x 8 trials, 50 units, 12 held out, 32 "
        "evaluation trials, 10 ms bins, window -0.25..0.55 s + 0.2 s forward), against the "
        "true rates' own fp-bps (the ceiling); `maze`: MC_Maze_Small with 27 pseudo-held-out "
        "units and 20 pseudo-evaluation trials, 5 ms bins, window -0.25..0.25 s + 0.2 s (the "
        "NLB test file has no spikes past 0.45 s: its forward period is the hidden target). "
        "Default settings, a "
        "5-minute budget (`train min`: what early stopping left of it); `load`: the 1-minute "
        "load average at the start / end of the fit (2 cores).",
    ),
    "sweep": (
        "AutoLFADS sweep",
        "python bench/sweep.py --minutes 10 --population 4 --workers 2",
        "Best member of a population-based search against one default fit, same budget.",
    ),
    "viewer_check": (
        "What Neurosift shows",
        "python bench/viewer_check.py [--filters RUN_DIR/X.lfads.nwb]",
        "The local Neurosift build opens each series of processing/lfads through a LINDI index "
        "(as it opens DANDI assets) in headless Chromium; the screenshots are beside the "
        "results. `series` lines: a simulated session fitted 3 epochs, the data's range and "
        "the range over what the plot opens on (columns 0-3). `filters` lines: MC_Maze_Small's "
        "enriched file with its series rewritten under each candidate filter set: bytes of "
        "the series' data, h5py read of `rates`, and whether the viewer's plot is the "
        "unfiltered file's, pixel for pixel.",
    ),
    "faults": (
        "kill -9 and the continue command",
        "python bench/faults.py --draws 20 --epochs 15 [--phases training,write,checkpointed]",
        "A tiny fit of a simulated session killed with SIGKILL at a random moment, the phases "
        "cycled over the draws: uniformly between the start and the final write (reading, "
        "compiling, training, checkpoints), a random delay after the first checkpoint, or a "
        "random delay into the final write; then the same command with `--resume`. `continued`: it exited 0 with a complete enriched file; `partial`: a "
        "`*.lfads.nwb` that did not open after the kill; `input changed`: the input's SHA-256 "
        "differed. Load: the 1-minute load average before and after.",
    ),
    "scale": (
        "Large inputs and the memory estimate",
        "python bench/scale.py --epochs 2",
        "`long`: one continuous hour of 384 Poisson units (2-20 Hz) at 10 ms bins in 1 s windows "
        "overlapping by 0.2 s; `stitched`: 20 simulated sessions of 200 trials (40-120 units). "
        "Default model, CPU devices as the command line splits them. `read s` and `read peak / "
        "counts`: the reader's time and its peak resident growth against the counts' bytes; "
        "trials/s over the epochs after the first; the memory estimate `fit` prints (the "
        "process's peak) against the peak resident size sampled every 20 ms while the trainer "
        "was built and trained.",
    ),
    "read": (
        "Reading NWB sessions",
        "python bench/read.py",
        "`read_session` against a plain h5py read and per-unit binning.",
    ),
}
ORDER = list(ABOUT)


# ---------------------------------------------------------------------------- reading


def _natural(text: str) -> list:
    """Sort key that orders ``s9`` before ``s10``."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def parse_name(path: Path) -> tuple[str, str, str, str]:
    """``chaotic_rnn_cpu2_2026-11-26_s8.jsonl`` -> (chaotic_rnn, cpu2, 2026-11-26, s8)."""
    base = path.name.split(".", 1)[0]
    m = _NAME.match(base)
    if m is None:
        return base, "", "", ""
    bench, _, host = m["stem"].rpartition("_")
    if not bench:  # "<bench>_<date>": no host in the name
        bench, host = host, ""
    return bench, host, m["date"], m["tag"] or ""


def _bench_of(record: dict, default: str) -> str:
    name = record.get("bench")
    if isinstance(name, str) and name.split():
        first = name.split()[0].rsplit("/", 1)[-1].removesuffix(".py")
        if first in ABOUT:
            return first
    return default


def read_results(results_dir: Path) -> list[dict]:
    """Every line of every results file, with ``_file``, ``_line``, ``_bench``, ``_host``,
    ``_date`` and ``_tag`` added; in file order within files sorted by (date, name)."""
    files = [p for p in results_dir.iterdir() if p.suffix in (".json", ".jsonl") and p.is_file()]
    files.sort(key=lambda p: (parse_name(p)[2], _natural(p.name)))
    rows = []
    for path in files:
        bench, host, date, tag = parse_name(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}: not valid JSON ({e})") from None
            records = doc if isinstance(doc, list) else [doc]
        else:
            records = []
            for i, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise SystemExit(f"{path}:{i}: not valid JSON ({e})") from None
        for i, rec in enumerate(records, 1):
            if not isinstance(rec, dict):
                raise SystemExit(f"{path}: entry {i} is not a JSON object")
            rows.append(
                dict(
                    rec,
                    _file=path.name,
                    _line=i,
                    _bench=_bench_of(rec, bench),
                    _host=host,
                    _date=date,
                    _tag=tag,
                )
            )
    return rows


# ---------------------------------------------------------------------------- formatting


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _num(value, fmt: str = "{:.4f}") -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else _cell(value)
    return fmt.format(value)


def _rate(value) -> str:
    return _num(value, "{:,.0f}")


def _minutes(seconds) -> str:
    return _num(seconds / 60.0, "{:.1f}") if isinstance(seconds, int | float) else ""


def _commit(row: dict) -> str:
    for key in ("commit", "code"):
        m = _HASH.search(str(row.get(key, "")))
        if m:
            return m.group(0)[:7]
    return ""


def _settings(row: dict) -> str:
    """The config differences a line names (``overrides``/``sets``, ``gain``, ``env``)."""
    items = [str(s) for s in (row.get("overrides") or row.get("sets") or [])]
    if "gain" in row:
        items.append(f"spike gain {row['gain']}")
    if row.get("env"):
        items.append(str(row["env"]))
    if isinstance(row.get("ema"), dict):  # one run, several parameter averages scored
        scored = ", ".join(f"{k} {v}" for k, v in sorted(row["ema"].items()))
        items.append(f"averages scored: {scored}")
    return ", ".join(f"`{s}`" for s in items) if items else "defaults"


def _source(row: dict) -> str:
    return f"[{row['_file']}:{row['_line']}]({LINK_PREFIX}{row['_file']})"


def _epochs(row: dict) -> str:
    epochs, best = row.get("epochs"), row.get("best_epoch")
    if epochs is None:
        return ""
    return f"{epochs} ({best})" if best is not None else str(epochs)


def _first_window(row: dict) -> str:
    windows = row.get("r2_by_window") or row.get("win") or {}
    return _num(windows.get("0-100ms"), "{:.3f}")


def _load(uptime) -> str:
    """The 1-minute load average of an ``uptime`` line, or ''."""
    m = re.search(r"load average:\s*([0-9.]+)", str(uptime or ""))
    return m.group(1) if m else ""


def _config(row: dict) -> dict:
    return row.get("config") if isinstance(row.get("config"), dict) else {}


def _model(row: dict) -> str:
    """``small`` (the throughput script's defaults), ``MC_Maze-sized`` or the sizes that differ."""
    config, text = _config(row), str(row.get("model", ""))
    if not config:
        return "small" if "small model" in text else _cell(text)
    if config.get("neurons") == 50 and config.get("gen_dim") == 64 and config.get("co_dim") == 4:
        return "small"
    if config.get("neurons") == 182:
        return "MC_Maze-sized"
    keys = ("neurons", "bins", "gen_dim", "co_dim", "fac_dim")
    return ", ".join(f"{k} {config[k]}" for k in keys if k in config)


def _suite(row: dict, part: str) -> dict:
    """A stitching suite line's ``settings``, ``summary`` or the summary's ``small`` / ``large``."""
    if part in ("settings", "summary"):
        value = row.get(part)
    else:
        value = (row.get("summary") or {}).get(part)
    return value if isinstance(value, dict) else {}


def _device(row: dict) -> str:
    name = str(row.get("gpu") or row.get("device") or "")
    if name.startswith("cpu"):
        return "CPU"
    return "GPU" if name.startswith("cuda") else _cell(name)


# ---------------------------------------------------------------------------- tables


COLUMNS: dict[str, list] = {
    "chaotic_rnn": [
        ("settings", _settings),
        ("tag", lambda r: _cell(r.get("tag", ""))),
        ("train min", lambda r: _minutes(r.get("train_s")) or _num(r.get("minutes_budget"), "{}")),
        ("epochs (best)", _epochs),
        ("R^2", lambda r: _num(r.get("r2")) if "r2" in r else "partial run, no score"),
        ("new cond.", lambda r: _num(r.get("r2_novel_conditions"))),
        ("0-100 ms", _first_window),
        ("stop", lambda r: _cell(r.get("stop_reason") or "")),
    ],
    "chaotic_oracle": [
        ("restarts", lambda r: _num(r.get("restarts"), "{}")),
        ("R^2 random starts", lambda r: _num(r.get("r2_random_starts"))),
        ("R^2 true start", lambda r: _num(r.get("r2_true_start"))),
        ("R^2 condition pooled", lambda r: _num(r.get("r2_condition_pooled"))),
        ("wall s", lambda r: _num(r.get("wall_s"), "{:.0f}")),
    ],
    "demo": [
        ("settings", _settings),
        ("epochs (best)", _epochs),
        ("train min", lambda r: _minutes(r.get("train_s"))),
        ("stop", lambda r: _cell(r.get("stopped", ""))),
        (
            "R^2 vs truth",
            lambda r: " / ".join(
                _num(s.get("r2_vs_truth"), "{:.3f}") for _, s in sorted(r["sessions"].items())
            ),
        ),
        (
            "valid bits/spike",
            lambda r: " / ".join(
                _num(s.get("valid_bits_per_spike"), "{:.3f}")
                for _, s in sorted(r["sessions"].items())
            ),
        ),
        ("best valid loss", lambda r: _num(r.get("best_valid_loss"), "{}")),
    ],
    "nlb_cosmoothing": [
        ("seed", lambda r: _num(r.get("seed"), "{}")),
        ("settings", _settings),
        ("train min", lambda r: _num(r.get("train_minutes"), "{:.1f}")),
        ("epochs (best)", _epochs),
        ("co-bps", lambda r: _num(r.get("co_bps"))),
        ("smoothing", lambda r: _num(r.get("co_bps_smoothing"))),
        ("true rates", lambda r: _num(r.get("co_bps_truth"))),
        ("R^2 held-out (eval)", lambda r: _num(r.get("r2_truth_heldout_eval"), "{:.3f}")),
        ("R^2 held-in", lambda r: _num(r.get("r2_truth_heldin"), "{:.3f}")),
    ],
    "nlb_mc_maze_small": [
        ("settings", _settings),
        ("train min", lambda r: _num(r.get("train_minutes"), "{:.1f}")),
        ("steps (best epoch)", lambda r: f"{r.get('steps', '')} ({r.get('best_epoch', '')})"),
        ("co-bps", lambda r: _num(r.get("co_bps"))),
        ("smoothing", lambda r: _num(r.get("co_bps_smoothing"))),
        ("bits/spike held-in", lambda r: _num(r.get("bps_heldin"))),
    ],
    "train_throughput": [
        ("device", _device),
        ("model", _model),
        ("batch", lambda r: _num(_config(r).get("batch_size", r.get("batch_size")), "{}")),
        ("devices", lambda r: _num(_config(r).get("devices", r.get("devices")), "{}")),
        ("settings", lambda r: _settings(r) if r.get("env") else ""),
        ("trials/s", lambda r: _rate(r.get("trials_per_s"))),
        ("fastest call", lambda r: _rate(r.get("trials_per_s_fastest_call"))),
        ("step ms", lambda r: _num(r.get("step_ms"), "{:.1f}")),
        ("compile s", lambda r: _num(r.get("compile_s"), "{:.1f}")),
        ("peak RSS MB", lambda r: _num(r.get("peak_rss_mb"), "{:,.0f}")),
    ],
    "viewer_check": [
        ("mode", lambda r: _cell(r.get("mode", ""))),
        ("candidate", lambda r: _cell(r.get("candidate", ""))),
        ("series", lambda r: _cell(str(r.get("series", "")).rsplit("/", 1)[-1])),
        ("filters", lambda r: _cell(" + ".join(r.get("filters") or []) or "none")),
        ("min / max", lambda r: f"{_num(r.get('min'), '{:.3g}')} / {_num(r.get('max'), '{:.3g}')}"),
        (
            "shown min / max",
            lambda r: f"{_num(r.get('view_min'), '{:.3g}')} / {_num(r.get('view_max'), '{:.3g}')}",
        ),
        ("data bytes", lambda r: _num(r.get("lfads_data_bytes"), "{:,}")),
        ("read ms", lambda r: _num(r.get("read_rates_ms"), "{:.1f}")),
        ("opened", lambda r: _cell(r.get("error") or r.get("opened", ""))),
        ("same plot as none", lambda r: _cell(r.get("same_plot_as_none", ""))),
        (
            "screenshot",
            lambda r: f"[png]({LINK_PREFIX}{r['screenshot']})" if r.get("screenshot") else "",
        ),
    ],
    "stitching": [
        ("settings", _settings),
        ("seeds", lambda r: _cell(len(_suite(r, "settings").get("seeds", [])) or "")),
        ("s/fit", lambda r: _num(_suite(r, "settings").get("seconds"), "{:g}")),
        ("small gain mean", lambda r: _num(_suite(r, "small").get("mean"), "{:+.3f}")),
        ("min", lambda r: _num(_suite(r, "small").get("min"), "{:+.3f}")),
        ("sd", lambda r: _num(_suite(r, "small").get("sd"), "{:.3f}")),
        (
            "positive",
            lambda r: (
                f"{_suite(r, 'small')['n_positive']}/{_suite(r, 'small')['n']}"
                if _suite(r, "small")
                else ""
            ),
        ),
        ("large worst", lambda r: _num(_suite(r, "large").get("worst"), "{:+.3f}")),
        ("accept", lambda r: _cell(_suite(r, "summary").get("accept", ""))),
        (
            "1 vs 8 sessions trials/s",
            lambda r: _num((r.get("throughput") or {}).get("ratio_single_over_multi"), "{:.3f}"),
        ),
    ],
    "transfer": [
        (
            "pretrain / min / joint",
            lambda r: " / ".join(
                _num(r.get("settings", {}).get(k), "{:g}")
                for k in ("pretrain_minutes", "minutes", "joint_minutes")
            ),
        ),
        ("load", lambda r: f"{_load(r.get('load_before'))} / {_load(r.get('load_after'))}"),
        ("day 1 R^2", lambda r: _num((r.get("pretrain") or {}).get("r2"), "{:.3f}")),
        (
            "transfer R^2 (start)",
            lambda r: "; ".join(
                f"{v.get('readin_start') or v.get('readin_init')} {_num(v.get('r2'), '{:.3f}')}"
                for v in (r.get("transfer") or {}).values()
            ),
        ),
        ("fresh R^2", lambda r: _num((r.get("fresh") or {}).get("r2"), "{:.3f}")),
        (
            "joint day 2 / day 1",
            lambda r: (
                f"{_num(r['joint']['day2'].get('r2'), '{:.3f}')} / "
                f"{_num(r['joint']['day1'].get('r2'), '{:.3f}')}"
                if r.get("joint")
                else ""
            ),
        ),
        ("gain", lambda r: _num(r.get("gain"), "{:+.3f}")),
        ("accept", lambda r: _cell(r.get("accept", ""))),
    ],
    "external_inputs": [
        (
            "external input",
            lambda r: (
                "with - without"
                if r.get("comparison")
                else _cell(", ".join(r.get("external_inputs") or []) or "none")
            ),
        ),
        ("train min", lambda r: _num(r.get("minutes"), "{:g}")),
        ("epochs", _epochs),
        (
            "R^2",
            lambda r: (
                _num(r.get("r2_gain"), "{:+.4f}") if r.get("comparison") else _num(r.get("r2"))
            ),
        ),
        (
            "mean \\|u\\|",
            lambda r: (
                f"{_num(r.get('u_abs_mean_without'), '{:.3f}')} -> "
                f"{_num(r.get('u_abs_mean_with'), '{:.3f}')}"
                if r.get("comparison")
                else _num(r.get("u_abs_mean"), "{:.3f}")
            ),
        ),
        ("at pulse", lambda r: _num(r.get("u_abs_pulse"), "{:.3f}")),
        ("elsewhere", lambda r: _num(r.get("u_abs_rest"), "{:.3f}")),
        (
            "load",
            lambda r: (
                f"{r['load_avg_start'][0]:.1f} / {r['load_avg_end'][0]:.1f}"
                if r.get("load_avg_start") and r.get("load_avg_end")
                else ""
            ),
        ),
    ],
    "forward": [
        ("part", lambda r: _cell(r.get("part", ""))),
        ("seed", lambda r: _num(r.get("seed"), "{}")),
        ("train min", lambda r: _num(r.get("train_minutes"), "{:.1f}")),
        ("epochs (best)", _epochs),
        ("fp-bps", lambda r: _num(r.get("fp_bps"))),
        ("held-in", lambda r: _num(r.get("fp_bps_heldin"))),
        ("held-out", lambda r: _num(r.get("fp_bps_heldout"))),
        ("true rates", lambda r: _num(r.get("fp_bps_truth"))),
        ("co-bps", lambda r: _num(r.get("co_bps"))),
        (
            "load",
            lambda r: (
                f"{_num(r.get('load_avg_start'), '{}')} / {_num(r.get('load_avg_end'), '{}')}"
            ),
        ),
    ],
    "faults": [
        ("draws", lambda r: _num(r.get("draws"), "{}")),
        (
            "killed (training / after checkpoint / write)",
            lambda r: (
                f"{r.get('killed_training')} / {r.get('killed_checkpointed', 0)} / "
                f"{r.get('killed_write')}"
            ),
        ),
        ("continued", lambda r: _num(r.get("continued"), "{}")),
        ("unusable", lambda r: _num(r.get("unusable_run_dirs"), "{}")),
        ("partial", lambda r: _num(r.get("partial_outputs"), "{}")),
        ("input changed", lambda r: _num(r.get("input_changed"), "{}")),
        ("continue s", lambda r: _num(r.get("continue_s_mean"), "{:.1f}")),
        (
            "load",
            lambda r: f"{(r.get('load_before') or [''])[0]} -> {(r.get('load_after') or [''])[0]}",
        ),
    ],
    "scale": [
        ("scenario", lambda r: _cell(r.get("scenario", ""))),
        ("trials x bins", lambda r: f"{r.get('trials')} x {r.get('bins')}"),
        ("counts MB", lambda r: _num(r.get("counts_mb"), "{:,.1f}")),
        ("read s", lambda r: _num(r.get("read_s"), "{:.2f}")),
        (
            "read peak / counts",
            lambda r: _num(
                (r["peak_rss_read_mb"] - r["rss_before_read_mb"]) / r["counts_mb"]
                if r.get("counts_mb")
                else None,
                "{:.2f}",
            ),
        ),
        ("devices", lambda r: _num(r.get("devices"), "{}")),
        ("streamed", lambda r: _cell(r.get("streamed", ""))),
        ("trials/s", lambda r: _rate(r.get("trials_per_s"))),
        ("estimate MB", lambda r: _num(r.get("estimate_peak_mb"), "{:,.0f}")),
        ("measured MB", lambda r: _num(r.get("measured_peak_mb"), "{:,.0f}")),
        ("ratio", lambda r: _num(r.get("estimate_over_measured_peak"), "{:.3f}")),
        (
            "load",
            lambda r: f"{(r.get('load_before') or [''])[0]} -> {(r.get('load_after') or [''])[0]}",
        ),
    ],
    "reference_scan": [
        ("device", _device),
        ("batch", lambda r: _num(_config(r).get("batch_size"), "{}")),
        ("trials/s", lambda r: _rate(r.get("trials_per_s"))),
        ("fastest call", lambda r: _rate(r.get("trials_per_s_fastest_call"))),
        ("step ms", lambda r: _num(r.get("step_ms"), "{:.1f}")),
        ("compile s", lambda r: _num(r.get("compile_s"), "{:.1f}")),
    ],
}

# the figure the summary quotes for each benchmark: (label, row -> its values)
KEY_FIGURE = {
    "faults": ("continued", lambda r: [r.get("continued")]),
    "scale": ("estimate / measured peak", lambda r: [r.get("estimate_over_measured_peak")]),
    "chaotic_rnn": ("R^2", lambda r: [r.get("r2")]),
    "chaotic_oracle": ("R^2 random starts", lambda r: [r.get("r2_random_starts")]),
    "demo": (
        "R^2 vs truth",
        lambda r: [s.get("r2_vs_truth") for s in (r.get("sessions") or {}).values()],
    ),
    "nlb_cosmoothing": ("co-bps", lambda r: [r.get("co_bps")]),
    "nlb_mc_maze_small": ("co-bps", lambda r: [r.get("co_bps")]),
    "train_throughput": ("trials/s", lambda r: [r.get("trials_per_s")]),
    "reference_scan": ("trials/s", lambda r: [r.get("trials_per_s")]),
    "stitching": ("small gain mean", lambda r: [_suite(r, "small").get("mean")]),
    "transfer": ("gain", lambda r: [r.get("gain")]),
    "external_inputs": ("R^2 gain", lambda r: [r.get("r2_gain")]),
    "forward": ("fp-bps", lambda r: [r.get("fp_bps")]),
}


def _generic_columns(rows: list[dict]) -> list:
    """For a benchmark without its own table: its scalar fields, in first-seen order."""
    keys: list[str] = []
    for row in rows:
        for k, v in row.items():
            if not k.startswith("_") and k not in keys and isinstance(v, int | float | str):
                keys.append(k)
    return [(k, lambda r, k=k: _num(r.get(k), "{}")) for k in keys[:10]]


def _table(headers: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def _figure_range(rows: list[dict], values_of) -> str:
    values = [v for r in rows for v in values_of(r) if isinstance(v, int | float)]
    if not values:
        return ""
    fmt = "{:,.0f}" if max(values) >= 100 else "{:.4f}"
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return lo if lo == hi else f"{lo} - {hi}"


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _title(bench: str) -> str:
    return ABOUT[bench][0] if bench in ABOUT else bench


def _summary(groups: dict[str, list[dict]]) -> list[str]:
    body = []
    for bench, rows in groups.items():
        for host in sorted({r["_host"] for r in rows}):
            mine = [r for r in rows if r["_host"] == host]
            last = max(r["_date"] for r in mine)
            label, values_of = KEY_FIGURE.get(bench, ("", None))
            span = (
                _figure_range([r for r in mine if r["_date"] == last], values_of) if label else ""
            )
            body.append(
                [
                    f"[{_title(bench)}](#{slug(_title(bench))})",
                    host or "-",
                    str(len(mine)),
                    last,
                    f"{label} {span}" if span else "",
                ]
            )
    return _table(["benchmark", "host", "lines", "latest date", "range on that date"], body)


INTRO = """\
# Benchmarks

<!-- Generated by bench/benchmarks_doc.py from bench/results/; do not edit by hand.
     Regenerate: python bench/benchmarks_doc.py (or make benchmarks-doc). -->

Every measurement recorded in `bench/results/`, one table per benchmark, oldest first; each
row links to the line it came from. Host tags come from the file names: `cpu2` is a 2-core CPU
virtual machine whose speed follows its host's load (compare within one series, and against
the reference scan run beside it), `h100` / `h200` one NVIDIA GPU. `settings` lists the
`--set` overrides of a run, `defaults` when there are none (the defaults of the commit
named, which changed over time: see [CHANGELOG.md](../CHANGELOG.md)). Figures measured under a
wall-clock budget depend on the host's speed as well as on the code.

## Summary
"""


def render(results_dir: Path = RESULTS) -> str:
    """The text of docs/BENCHMARKS.md for the results files in ``results_dir``."""
    rows = read_results(Path(results_dir))
    names = sorted(
        {r["_bench"] for r in rows},
        key=lambda b: (b not in ORDER, ORDER.index(b) if b in ORDER else 0, b),
    )
    groups = {b: [r for r in rows if r["_bench"] == b] for b in names}
    out = [*INTRO.splitlines(), "", *_summary(groups)]
    for bench, group in groups.items():
        title, command, what = ABOUT.get(bench, (bench, "", ""))
        columns = COLUMNS.get(bench) or _generic_columns(group)
        headers = ["date", "host", *(h for h, _ in columns), "commit", "source"]
        body = [
            [r["_date"], r["_host"], *(f(r) for _, f in columns), _commit(r), _source(r)]
            for r in group
        ]
        out += ["", f"## {title}", ""]
        if what:
            out += [*textwrap.wrap(what, width=100), ""]
        if command:
            out += [f"Reproduce: `{command}`", ""]
        out += _table(headers, body)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=RESULTS, help="results folder")
    p.add_argument("--out", type=Path, default=OUT, help="the Markdown file to write")
    p.add_argument("--check", action="store_true", help="exit 1 if --out is out of date")
    args = p.parse_args(argv)
    text = render(args.results)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        if current != text:
            print(f"{args.out} is out of date: run python bench/benchmarks_doc.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
