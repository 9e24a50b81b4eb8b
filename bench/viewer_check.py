"""What Neurosift shows of the series nwb-lfads writes: screenshots and JSON (one object a line).

Not part of CI: it needs the local Neurosift build and its checker (``--checker``, default
``../shared/tools/neurosift/check.py``), ``pip install lindi playwright`` and Chromium
(``apt-get install -y chromium``). The checker serves a copy of the file and the viewer on
127.0.0.1, opens the file through a LINDI index as Neurosift opens DANDI assets, opens one
series' plot in headless Chromium and saves a screenshot. The plot is drawn on a canvas, so the
values cannot be read back: look at each screenshot and compare its y axis with the data's
``min`` and ``max`` printed beside it.

Two modes:

- default: simulate one session (``nwb-lfads simulate --seed 0``), fit it for ``--epochs``
  epochs (small model: ``gen_dim=32``, inferred inputs on) and check every series the run wrote
  under ``processing/lfads`` (a group holding a 2-D ``data``). One line per series: its path,
  shape, the data's min and max, its HDF5 filters, whether the viewer opened the plot, the
  screenshot (``<out>/viewer_check_<series>.png``).
- ``--filters FILE``: on an enriched file, rewrite the series' ``data`` of ``processing/lfads``
  with each candidate filter set (same chunk shape) and print, per candidate, the bytes those
  datasets take, the best h5py read time of the whole ``rates`` array, and the checker's verdict
  on ``rates`` (screenshot ``<out>/viewer_check_filter_<candidate>.png``) with
  ``same_plot_as_none``: whether its screenshot is the unfiltered file's, pixel for pixel (the
  checker's ``opened`` is also true when the plot shows a decoding error instead of a curve).

Screenshots are reduced to half size and a 64-colour palette to stay small.

    python bench/viewer_check.py [--out bench/results] [--epochs 3] [--work DIR]
    python bench/viewer_check.py --filters RUN_DIR/session.lfads.nwb [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT.parent / "shared" / "tools" / "neurosift" / "check.py"
GROUP = "processing/lfads"
VIEW_SAMPLES = 1500  # Neurosift's series plot opens on this many samples' worth of time

# candidate -> h5py create_dataset keywords; "shuffle+gzip4" is what the writer used before
CANDIDATES = {
    "none": {},
    "gzip1": {"compression": "gzip", "compression_opts": 1},
    "gzip4": {"compression": "gzip", "compression_opts": 4},
    "gzip9": {"compression": "gzip", "compression_opts": 9},
    "shuffle+gzip4": {"compression": "gzip", "compression_opts": 4, "shuffle": True},
    "lzf": {"compression": "lzf"},
    "fletcher32+gzip4": {"compression": "gzip", "compression_opts": 4, "fletcher32": True},
}


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def series_paths(path: Path) -> list[str]:
    """Paths of the groups under processing/lfads that hold a 2-D ``data`` (the series)."""
    import h5py

    with h5py.File(path, "r") as f:
        return [
            f"{GROUP}/{name}"
            for name, obj in f[GROUP].items()
            if isinstance(obj, h5py.Group) and "data" in obj and obj["data"].ndim == 2
        ]


def describe(path: Path, series: str) -> dict:
    """Shape, min, max (NaN ignored) and HDF5 filter names of ``series/data`` read with h5py,
    and ``view_min``/``view_max``: the same over about what Neurosift's plot opens on, columns
    0-3 from the first sample for ``VIEW_SAMPLES / rate`` seconds of session time (``rate`` from
    the median timestamp step)."""
    import h5py

    with h5py.File(path, "r") as f:
        group = f[series]
        ds = group["data"]
        data = ds[:]
        plist = ds.id.get_create_plist()
        names = [plist.get_filter(i)[3].decode() for i in range(plist.get_nfilters())]
        if "timestamps" in group:
            stamps = group["timestamps"][:]
        else:
            start = group["starting_time"]
            stamps = float(start[()]) + np.arange(len(data)) / float(start.attrs["rate"])
    rate = 1.0 / float(np.median(np.diff(stamps)))
    view = data[stamps < stamps[0] + VIEW_SAMPLES / rate, :4]
    return {
        "series": series,
        "shape": list(data.shape),
        "min": float(np.nanmin(data)),
        "max": float(np.nanmax(data)),
        "view_min": float(np.nanmin(view)),
        "view_max": float(np.nanmax(view)),
        "filters": names,
    }


def pixels(png: Path) -> np.ndarray:
    """The screenshot's pixels less the status bar at the bottom (it counts requests)."""
    from PIL import Image

    with Image.open(png) as im:
        arr = np.asarray(im.convert("RGB"))
    return arr[: int(arr.shape[0] * 0.95)]


def shrink(png: Path) -> None:
    """Half size, 64-colour palette: a screenshot of a few tens of kB."""
    from PIL import Image

    with Image.open(png) as im:
        small = im.convert("RGB").resize((im.width // 2, im.height // 2), Image.LANCZOS)
    small.quantize(colors=64).save(png, optimize=True)


def check(checker: Path, nwb: Path, series: str, png: Path) -> dict:
    """Run the shared checker: ``opened``, the error's last line on failure, the screenshot."""
    png.unlink(missing_ok=True)  # a screenshot of an earlier run is not this one's
    proc = subprocess.run(
        [sys.executable, str(checker), str(nwb), series, str(png)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"opened": False}
    if proc.returncode != 0:
        result["error"] = (proc.stderr.strip().splitlines() or ["(no message)"])[-1][-300:]
    verdict = {"opened": bool(result.get("opened"))}
    if "error" in result:
        verdict["error"] = result["error"]
    if png.exists():
        shrink(png)
        verdict["screenshot"] = png.name
    return verdict


def run_series(args) -> list[dict]:
    """Simulate, fit a few epochs, check every series written."""
    from nwb_lfads.rundir import RunDir

    work = Path(args.work or tempfile.mkdtemp(prefix="viewer-check-"))
    cli = [sys.executable, "-m", "nwb_lfads.cli.main"]
    # their progress goes to stderr: stdout is the JSON lines
    subprocess.run(
        [*cli, "simulate", str(work / "sim"), "--seed", "0"], check=True, stdout=sys.stderr
    )
    sources = sorted((work / "sim").glob("*.nwb"))
    run = work / "run"
    fit = [
        *cli,
        "fit",
        *map(str, sources),
        "--out",
        str(run),
        "--align-to",
        "move_onset_time",
        "--max-epochs",
        str(args.epochs),
        "--seed",
        "0",
        "--set",
        "model.gen_dim=32",
        "--set",
        "model.co_dim=2",
        "--no-plots",
        "--quiet",
    ]
    subprocess.run(fit, check=True, stdout=sys.stderr)
    written = RunDir(run).output(sources[0])
    rows = []
    for series in series_paths(written):
        png = args.out / f"viewer_check_{series.rsplit('/', 1)[-1]}.png"
        row = {"mode": "series", "file": written.name, **describe(written, series)}
        row.update(check(args.checker, written, series, png))
        rows.append(row)
    return rows


def rewrite(src: Path, dst: Path, options: dict) -> int:
    """Copy ``src`` to ``dst`` with the series' data of processing/lfads rewritten with
    ``options``; return the bytes those datasets take."""
    import h5py

    shutil.copyfile(src, dst)
    total = 0
    with h5py.File(dst, "r+") as f:
        for series in series_paths(dst):
            group = f[series]
            old = group["data"]
            data, attrs, chunks = old[:], dict(old.attrs), old.chunks or True
            del group["data"]
            new = group.create_dataset("data", data=data, chunks=chunks, **options)
            for key, value in attrs.items():
                new.attrs[key] = value
            total += new.id.get_storage_size()
    return total


def read_seconds(path: Path, series: str, repeat: int = 5) -> float:
    import h5py

    best = np.inf
    with h5py.File(path, "r") as f:
        for _ in range(repeat):
            t0 = time.perf_counter()
            f[series]["data"][:]
            best = min(best, time.perf_counter() - t0)
    return best


def run_filters(args) -> list[dict]:
    """Each candidate filter set on the series of an enriched file: size, read time, viewer."""
    src = Path(args.filters)
    work = Path(tempfile.mkdtemp(prefix="viewer-filters-"))
    rows = []
    try:
        for name, options in CANDIDATES.items():
            dst = work / f"{name}.nwb"
            nbytes = rewrite(src, dst, options)
            rates = f"{GROUP}/rates"
            png = args.out / f"viewer_check_filter_{name.replace('+', '_')}.png"
            row = {"mode": "filters", "file": src.name, "candidate": name}
            row.update(describe(dst, rates), lfads_data_bytes=nbytes)
            row["read_rates_ms"] = round(1e3 * read_seconds(dst, rates), 2)
            row.update(check(args.checker, dst, rates, png))
            reference = args.out / "viewer_check_filter_none.png"  # the unfiltered file's
            if png.exists() and reference.exists():  # the same picture: the same values
                row["same_plot_as_none"] = bool(np.array_equal(pixels(png), pixels(reference)))
            rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="screenshots")
    p.add_argument("--checker", type=Path, default=CHECKER, help="the shared check.py")
    p.add_argument("--epochs", type=int, default=3, help="training epochs of the simulated fit")
    p.add_argument("--work", type=Path, help="folder for the simulated session and the run")
    p.add_argument("--filters", type=Path, help="survey filter candidates on this enriched file")
    args = p.parse_args(argv)
    if not args.checker.is_file():
        sys.exit(f"{args.checker}: the Neurosift checker is not there; pass --checker PATH")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = run_filters(args) if args.filters else run_series(args)
    for row in rows:
        print(json.dumps({"bench": "viewer_check", "commit": commit(), **row}), flush=True)
    return 0 if args.filters or all(r["opened"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
