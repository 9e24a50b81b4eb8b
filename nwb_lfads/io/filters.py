"""The HDF5 filters of what nwb-lfads writes: only those the standard viewer decodes.

Neurosift, the viewer most NWB users open DANDI files in, reads a file through a LINDI index
(a JSON of HDF5 chunk references) and decodes the chunks in the browser. On that path deflate
(gzip) and unfiltered chunks come out right; ``shuffle`` is undone wrongly (a float32 series
plots as values near +-3e38), LINDI refuses lzf, szip and scaleoffset, and Neurosift has no
decoder for fletcher32 or zstd. Measured in ``bench/viewer_check.py --filters``; the decision
and its numbers are in docs/DESIGN.md ("HDF5 filters").
"""

from __future__ import annotations

from ..errors import NwbContentError

MODULE_PATH = "processing/lfads"

# HDF5 filter id -> name, for the filters Neurosift decodes correctly (deflate alone; a
# dataset with no filter at all is fine too). Not shuffle (2), fletcher32 (3), szip (4),
# nbit (5), scaleoffset (6), lzf (32000), blosc (32001) or zstd (32015).
VIEWER_FILTERS = {1: "gzip"}
GZIP_LEVEL = 4


def compressed(data):
    """``data`` wrapped for writing with the filters every viewer decodes.

    Args:
        data: array (any shape and dtype) of a dataset of ``processing/lfads``.

    Returns:
        ``hdmf.backends.hdf5.H5DataIO`` with gzip at ``GZIP_LEVEL`` and no shuffle (h5py picks
        the chunk shape).
    """
    from hdmf.backends.hdf5 import H5DataIO

    return H5DataIO(data, compression="gzip", compression_opts=GZIP_LEVEL, shuffle=False)


def viewer_unsafe_datasets(path, group: str = MODULE_PATH) -> dict[str, list[str]]:
    """Datasets under ``group`` of the HDF5 file ``path`` whose filters the viewer cannot decode.

    Args:
        path: an NWB (HDF5) file.
        group: the group to walk (all its datasets, at any depth).

    Returns:
        ``{dataset path: [filter names]}`` for every dataset with a filter outside
        ``VIEWER_FILTERS`` (names from HDF5, e.g. ``shuffle``, ``lzf``); empty when all are safe.

    Raises:
        NwbContentError: ``path`` has no ``group``.
    """
    import h5py

    unsafe: dict[str, list[str]] = {}

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        plist = obj.id.get_create_plist()
        filters = [plist.get_filter(i) for i in range(plist.get_nfilters())]
        bad = [_filter_name(f) for f in filters if f[0] not in VIEWER_FILTERS]
        if bad:
            unsafe[obj.name] = bad

    with h5py.File(path, "r") as f:
        if group not in f:
            raise NwbContentError(f"{path}: no {group} (found: {sorted(f)}).")
        f[group].visititems(visit)
    return unsafe


def _filter_name(f: tuple) -> str:
    """``(id, flags, values, name)`` from h5py's ``get_filter`` -> a readable name."""
    name = f[3].decode(errors="replace") if isinstance(f[3], bytes) else str(f[3])
    return name.strip() or f"filter {f[0]}"
