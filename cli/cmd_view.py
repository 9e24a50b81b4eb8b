"""``nwb-lfads view FILE``: open an NWB file in Neurosift through the ``neurosift`` package."""

from __future__ import annotations

import click

INSTALL = 'pip install "nwb-lfads[view]"'


@click.command("view")
@click.argument("source", metavar="FILE", type=click.Path(dir_okay=False))
@click.option(
    "--neurosift-url",
    metavar="URL",
    help="A Neurosift app of your own (e.g. a local build on http://localhost:5173) instead "
    "of the hosted one.",
)
def command(source: str, neurosift_url: str | None) -> None:
    """Open FILE (e.g. RUN_DIR/session.lfads.nwb) in Neurosift, the NWB viewer, in a browser.

    \b
    Runs `neurosift view-nwb FILE` from the optional `neurosift` package: it serves the local
    file to the viewer in your browser until you press Ctrl-C. Needs Node.js 16 or newer
    (node and npm on PATH). Install the package with
      pip install "nwb-lfads[view]"
    processing/lfads holds rates, factors and inferred_inputs as time series to plot.
    """
    import importlib.util
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from nwb_lfads.errors import NwbLfadsError, NwbLfadsRuntimeError
    from nwb_lfads.io.open import check_nwb_path

    path = check_nwb_path(source).resolve()
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    exe = importlib.util.find_spec("neurosift") and shutil.which("neurosift", path=search)
    if not exe:
        raise NwbLfadsError(
            f"{path}: `nwb-lfads view` needs the Python package 'neurosift' (and its "
            f"`neurosift` command), which is not installed; install it with: {INSTALL}"
        )
    missing = [tool for tool in ("node", "npm") if not shutil.which(tool)]
    if missing:
        raise NwbLfadsError(
            f"{path}: `neurosift view-nwb` serves the file with a small Node.js script, but "
            f"{' and '.join(missing)} is not on PATH; install Node.js 16 or newer "
            f"(e.g. apt-get install nodejs npm)."
        )
    args = [exe, "view-nwb", str(path)]
    if neurosift_url:
        args += ["--neurosift-url", neurosift_url]
    try:
        code = subprocess.run(args, check=False).returncode
    except KeyboardInterrupt:  # Ctrl-C is how the user stops the file server
        return
    if code != 0:
        raise NwbLfadsRuntimeError(f"{path}: `{' '.join(args)}` exited with status {code}.")
