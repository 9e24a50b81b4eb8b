"""Open an NWB source for reading, with errors that name the file and the fix.

``open_nwb`` is the one place every reader goes through: a local path, an already open
``pynwb.NWBFile`` (yielded as is), and DANDI assets (a ``dandi:...`` identifier or archive URL
naming one asset, or a resolved :class:`~nwb_lfads.io.sources.DandiAsset`), streamed through
:func:`nwb_lfads.io.dandi.open_asset` without downloading the whole file. Files are always
opened read-only; inputs are never modified.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputFileError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_nwb_path(path: str | os.PathLike) -> Path:
    """Return ``path`` as a ``Path`` after checking it exists and is an NWB (HDF5) file.

    Raises:
        InputFileError: missing file, a folder, not HDF5, or HDF5 without NWB markers.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputFileError(
            f"{p}: file not found. Check the path (globs must be quoted or match files)."
        )
    if p.is_dir():
        raise InputFileError(
            f"{p}: is a folder, not an NWB file. Pass the .nwb files inside it, e.g. '{p}/*.nwb'."
        )
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head != HDF5_SIGNATURE:
        import h5py  # user block or other offsets are rare; let h5py decide

        if not h5py.is_hdf5(p):
            raise InputFileError(
                f"{p}: not an HDF5 file, so not an NWB file (zarr NWB is not supported). "
                f"Check that the download completed."
            )
    import h5py

    try:
        with h5py.File(p, "r") as f:
            is_nwb = "nwb_version" in f.attrs or ("general" in f and "acquisition" in f)
    except OSError as exc:
        raise InputFileError(
            f"{p}: HDF5 file cannot be read ({exc}); it may be truncated or corrupt."
        ) from None
    if not is_nwb:
        raise InputFileError(
            f"{p}: HDF5 file without NWB structure (no 'nwb_version' attribute). "
            f"Convert it to NWB first (e.g. with neuroconv)."
        )
    return p


@contextlib.contextmanager
def open_nwb(source) -> Iterator[pynwb.NWBFile]:  # noqa: F821
    """Open ``source`` read-only and yield its ``pynwb.NWBFile``.

    Args:
        source: a path (str or ``os.PathLike``) to a local ``.nwb`` file, an open
            ``pynwb.NWBFile`` (yielded unchanged, not closed), a DANDI identifier or URL naming
            one asset (``dandi:000140/sub-Jenkins/*test*.nwb``), or a ``DandiAsset``.
    """
    import pynwb

    from .sources import DandiAsset, is_dandi_spec

    if isinstance(source, pynwb.NWBFile):
        yield source
        return
    if isinstance(source, DandiAsset) or is_dandi_spec(source):
        from .dandi import open_asset, resolve_one

        with open_asset(
            source if isinstance(source, DandiAsset) else resolve_one(source)
        ) as nwbfile:
            yield nwbfile
        return
    path = check_nwb_path(source)
    try:
        io = pynwb.NWBHDF5IO(str(path), mode="r", load_namespaces=True)
        nwbfile = io.read()
    except Exception as exc:  # pynwb raises many kinds on malformed files
        raise InputFileError(
            f"{path}: pynwb cannot read it as NWB ({type(exc).__name__}: {exc})."
        ) from None
    try:
        yield nwbfile
    finally:
        io.close()


def source_name(source) -> str:
    """A short human name for a source (file path, or the NWBFile's identifier)."""
    import pynwb

    if isinstance(source, pynwb.NWBFile):
        return f"<NWBFile {source.identifier}>"
    return str(source)
