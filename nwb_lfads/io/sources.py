"""Sources: the local paths, globs and DANDI identifiers that commands accept, made uniform.

``expand_sources`` turns what a user typed into a list of :data:`Source` (a local ``Path`` or a
:class:`DandiAsset`), resolving local globs and asking the DANDI archive which assets a DANDI
identifier names; ``localize`` then makes every source a local file (DANDI assets are
downloaded, checksum-verified, into a cache folder), which is what ``fit`` and ``infer`` need
since they write full copies. ``inspect`` and ``read_session`` stream DANDI assets instead
(:func:`nwb_lfads.io.dandi.open_asset`, reached through :func:`nwb_lfads.io.open.open_nwb`).

DANDI identifiers (the archive instance comes from the ``dandi`` client's own configuration,
``DANDI_INSTANCE``, default the main archive):

    dandi:000128                          every NWB asset of the most recent published
                                          version (the draft when none is published)
    dandi:000128/sub-Jenkins/*.nwb        assets whose path matches the glob ('*' crosses '/')
    dandi:000128@0.220113.0400/sub-Jenkins/   a version; a folder means everything under it
    DANDI:000128/0.220113.0400            the archive's citation form (a version, no path)
    https://dandiarchive.org/dandiset/000128[/VERSION]   archive URLs (web or API, incl. asset
                                          URLs), parsed by ``dandi.dandiarchive.parse_dandi_url``
"""

from __future__ import annotations

import glob as globmod
import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DandiError, InputFileError

DANDI_PREFIX = re.compile(r"^(dandi:|dandi://|https?://)", re.IGNORECASE)
# dandi:ID[@VERSION][/PATH]; 'dandi:' optional where a bare id is unambiguous (download)
DANDI_SPEC = re.compile(
    r"^(?:dandi:)?(?P<dandiset>\d{6})(?:@(?P<version>[^/]*))?(?:/(?P<path>.*))?$", re.IGNORECASE
)
VERSION = re.compile(r"^(?:\d+\.\d+\.\d+|draft)$")


@dataclass(frozen=True)
class DandiAsset:
    """One asset (a file) of one version of a dandiset on a DANDI archive instance.

    Attributes:
        api_url: the instance's API base URL, e.g. ``https://api.dandiarchive.org/api``.
        dandiset_id: six digits, e.g. ``"000128"`` (``None`` for an asset URL without one).
        version: ``"draft"`` or a published version such as ``"0.220113.0400"`` (or ``None``).
        path: the asset's path in the dandiset, ``/``-separated.
        asset_id: the archive's asset identifier (a UUID).
        size: bytes.
        etag: the ``dandi:dandi-etag`` digest the archive stores (checked after downloads).
        download_url: the API's download URL (it redirects to the blob).
        content_url: the blob's direct URL (S3 on the main archive), used for streaming.
    """

    api_url: str
    dandiset_id: str | None
    version: str | None
    path: str
    asset_id: str
    size: int
    etag: str
    download_url: str
    content_url: str

    @property
    def name(self) -> str:
        """The file name, e.g. ``sub-Jenkins_ses-small_desc-train_ecephys.nwb``."""
        return posixpath.basename(self.path)

    def __str__(self) -> str:
        if self.dandiset_id is None:
            return f"{self.api_url}/assets/{self.asset_id}/ ({self.path})"
        return f"dandi:{self.dandiset_id}@{self.version}/{self.path}"


Source = Path | DandiAsset


@dataclass(frozen=True)
class DandiSpec:
    """A parsed ``dandi:`` identifier: dandiset, optional version, optional path glob."""

    dandiset_id: str
    version: str | None
    glob: str | None  # None: the whole dandiset


def is_dandi_spec(spec) -> bool:
    """True for DANDI identifiers and URLs (``dandi:...``, ``DANDI:...``, ``dandi://``, ``http(s)://``)."""
    return isinstance(spec, str) and bool(DANDI_PREFIX.match(spec.strip()))


def parse_dandi_spec(spec: str) -> DandiSpec:
    """Parse ``[dandi:]ID[@VERSION][/PATH_GLOB]`` (not URLs: those go to ``parse_dandi_url``).

    A trailing ``/`` (a folder) becomes ``folder/*``; ``DANDI:ID/VERSION`` (the archive's
    citation form) reads as a version.

    Raises:
        DandiError: not of that form, or a malformed version.
    """
    m = DANDI_SPEC.match(spec.strip())
    if not m:
        raise DandiError(
            f"{spec!r}: not a DANDI identifier. Expected dandi:DANDISET[@VERSION][/PATH_GLOB] "
            f"with a six-digit dandiset id, e.g. dandi:000128 or 'dandi:000128/sub-Jenkins/*.nwb', "
            f"or an archive URL such as https://dandiarchive.org/dandiset/000128."
        )
    version, path = m.group("version"), m.group("path") or None
    if version is None and path and "/" not in path.rstrip("/") and VERSION.match(path.rstrip("/")):
        version, path = path.rstrip("/"), None
    if version is not None and not VERSION.match(version):
        raise DandiError(
            f"{spec!r}: {version!r} is not a DANDI version. Use 'draft' or a published "
            f"version such as 0.220113.0400 (listed on the dandiset's page)."
        )
    if path is not None:
        path = path.lstrip("/")
        if path.endswith("/"):
            path += "*"
        path = path or None
    return DandiSpec(m.group("dandiset"), version, path)


def _has_magic(spec: str) -> bool:
    return globmod.has_magic(spec)


def _expand_local(spec) -> list[Path]:
    from .open import check_nwb_path

    text = os.fspath(spec)
    if isinstance(spec, str) and _has_magic(text):
        matches = sorted(globmod.glob(os.path.expanduser(text), recursive=True))
        files = [Path(p) for p in matches if not Path(p).is_dir()]
        if not files:
            raise InputFileError(
                f"{text}: the glob matches no files (from {Path.cwd()}). Check the pattern, "
                f"or quote it so that the shell does not expand it first."
            )
        return [check_nwb_path(p) for p in files]
    return [check_nwb_path(text)]


def expand_sources(specs: Iterable) -> list[Source]:
    """Expand what a user passed as SOURCES into one entry per session file, in order.

    Args:
        specs: local paths (``str`` or ``os.PathLike``), local globs (``'runs/*.nwb'``),
            DANDI identifiers or URLs (see the module docstring), or already expanded
            :class:`DandiAsset` objects. DANDI specs keep only ``.nwb`` assets.

    Returns:
        ``Path`` (checked to be an NWB file) or :class:`DandiAsset`, one per session.

    Raises:
        InputFileError: a missing local file or a local glob that matches nothing.
        DandiError: an unknown dandiset, version or asset, a DANDI glob that matches nothing,
            or an archive that cannot be reached.
    """
    if isinstance(specs, (str, os.PathLike, DandiAsset)):
        specs = [specs]
    out: list[Source] = []
    for spec in specs:
        if isinstance(spec, DandiAsset):
            out.append(spec)
        elif is_dandi_spec(spec):
            from .dandi import resolve

            assets = resolve(spec)
            nwb = [a for a in assets if a.path.lower().endswith(".nwb")]
            if not nwb:
                shown = ", ".join(a.path for a in assets[:5])
                raise DandiError(
                    f"{spec}: matches {len(assets)} asset(s) but no .nwb file ({shown}). "
                    f"Point at the NWB files, e.g. {spec.rstrip('/')}/*.nwb."
                )
            out.extend(nwb)
        else:
            out.extend(_expand_local(spec))
    if not out:
        raise InputFileError(
            "no sources given: pass NWB files, globs or DANDI identifiers (dandi:000128)."
        )
    return out


def localize(
    sources: Iterable[Source], cache_dir: str | os.PathLike | None = None, *, progress: bool = True
) -> list[Path]:
    """Return a local path for every source, downloading DANDI assets into ``cache_dir``.

    Local paths are returned unchanged. A DANDI asset lands in
    ``cache_dir/<instance>/<dandiset>/<version>/<asset path>``, its dandi-etag checked; a copy
    already there with the archive's etag is reused, an interrupted one resumed.

    Args:
        sources: output of :func:`expand_sources`.
        cache_dir: defaults to :func:`nwb_lfads.io.dandi.default_cache_dir`
            (``$NWB_LFADS_CACHE_DIR/dandi`` or the user cache dir, ``~/.cache/nwb-lfads/dandi``).
        progress: show download progress on stderr.
    """
    sources = list(sources)
    remote = [s for s in sources if isinstance(s, DandiAsset)]
    fetched: dict[DandiAsset, Path] = {}
    if remote:
        from .dandi import fetch_assets

        fetched = dict(zip(remote, fetch_assets(remote, cache_dir, progress=progress)))
    return [fetched[s] if isinstance(s, DandiAsset) else Path(s) for s in sources]
