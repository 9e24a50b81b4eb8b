"""DANDI archive access through the ``dandi`` client: resolve identifiers, download, stream.

Everything talks to the archive through ``dandi`` itself (``DandiAPIClient`` for listing,
``dandi.download.Downloader`` for downloads, which verifies the ``dandi-etag`` digest, skips
complete files and resumes interrupted ones from ``<file>.dandidownload/``), so the archive
instance is whatever the client is configured for: ``DANDI_INSTANCE`` names a known instance
(``dandi``, ``dandi-sandbox``, ...; see ``dandi.consts.known_instances``) or is the URL of any
other archive (``DANDI_INSTANCE=https://my-archive.example.org``; the client reads
``<url>/server-info`` for its API). Private or embargoed data needs the instance's API key in
``<INSTANCE>_API_KEY`` (``DANDI_API_KEY`` for the main archive), as for the ``dandi`` CLI.

Streaming (``open_asset``) reads the blob over HTTP range requests with ``remfile``, keeping
fetched blocks in a local disk cache, so only the parts of the file that are read travel.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DandiError, InputFileError
from .sources import DandiAsset, DandiSpec, parse_dandi_spec

CACHE_ENV = "NWB_LFADS_CACHE_DIR"
# URL shapes dandi.dandiarchive.parse_dandi_url knows (its catch-all follows redirects of anything)
DANDI_URL = re.compile(
    r"^dandi://|/dandisets?/\d{6}|/assets/[^/?#]+|identifiers\.org/DANDI:", re.IGNORECASE
)


# ---- configuration ----------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """Where DANDI assets are cached: ``$NWB_LFADS_CACHE_DIR/dandi`` or ``~/.cache/nwb-lfads/dandi``."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("nwb-lfads")
    return Path(root).expanduser() / "dandi"


def archive_instance():
    """The ``dandi.consts.DandiInstance`` the client is configured for (``DANDI_INSTANCE``)."""
    from dandi.consts import known_instances
    from dandi.utils import get_instance

    name = os.environ.get("DANDI_INSTANCE", "dandi")
    try:
        with _archive_errors(f"DANDI_INSTANCE={name}", name):
            return get_instance(name)
    except (KeyError, ValueError) as exc:  # an unknown name; the removed 'dandi-staging'
        raise DandiError(
            f"DANDI_INSTANCE={name!r} is not a DANDI instance the dandi client knows "
            f"({', '.join(known_instances)}){'' if isinstance(exc, KeyError) else ': ' + str(exc)}. "
            f"Set it to one of them or to the archive's URL (e.g. https://dandiarchive.org)."
        ) from None


# ---- errors ---------------------------------------------------------------------------------
class _StripTracebacks(logging.Filter):
    """Drop dandi's 404 reports (each becomes our own error) and its tracebacks (retry messages stay)."""

    def filter(self, record):
        if str(record.msg).startswith("%s: %s") and " 404 " in record.getMessage():
            return False
        record.exc_info, record.exc_text = None, None
        return True


@contextlib.contextmanager
def _dandi_logs():
    logger, flt = logging.getLogger("dandi"), _StripTracebacks()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300] + ("..." if len(text) > 300 else "")


def _network_error(
    what: str, where: str, exc: BaseException, nothing: str = "nothing was downloaded"
) -> DandiError:
    return DandiError(
        f"{what}: could not reach the DANDI archive at {where} "
        f"({type(exc).__name__}: {_reason(exc)}); {nothing}. Check the network connection "
        f"(and DANDI_INSTANCE if you use another archive), then run again."
    )


@contextlib.contextmanager
def _archive_errors(what: str, where: str, nothing: str = "nothing was downloaded"):
    """Map the dandi client's and requests' exceptions to :class:`DandiError`."""
    import requests
    from dandi.exceptions import FailedToConnectError, NotFoundError, UnknownURLError

    try:
        with _dandi_logs():
            yield
    except DandiError:
        raise
    except NotFoundError as exc:
        raise DandiError(f"{what}: {_reason(exc)} on {where}.") from None
    except UnknownURLError as exc:
        raise DandiError(
            f"{what}: not a DANDI URL the dandi client understands ({_reason(exc)})."
        ) from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise DandiError(
                f"{what}: the archive at {where} refused access (HTTP {status}). Embargoed or "
                f"private data needs an API key in <INSTANCE>_API_KEY (DANDI_API_KEY for "
                f"dandiarchive.org)."
            ) from None
        raise _network_error(what, where, exc, nothing) from None
    except (requests.RequestException, FailedToConnectError) as exc:
        raise _network_error(what, where, exc, nothing) from None
    except RuntimeError as exc:  # the client's own failures, e.g. "Could not retrieve server info"
        if "server info" in str(exc):
            raise _network_error(what, where, exc, nothing) from None
        raise DandiError(f"{what}: the dandi client failed at {where}: {_reason(exc)}") from None


# ---- resolving identifiers --------------------------------------------------------------------
def _target(spec: str, version: str | None):
    """(instance, DandiSpec or None, asset_id or None) for a ``dandi:`` identifier or an archive URL."""
    text = spec.strip()
    if re.match(r"^(https?|dandi)://", text, re.IGNORECASE):
        from dandi import dandiarchive as da

        if not DANDI_URL.search(text):  # dandi would chase redirects of any URL for minutes
            raise DandiError(
                f"{spec}: not a DANDI archive URL. Expected https://<archive>/dandiset/<id>"
                f"[/<version>], an API URL (.../api/dandisets/<id>/..., .../api/assets/<id>/) "
                f"or dandi:<id>[/<path glob>]."
            )
        with _archive_errors(spec, text):
            purl = da.parse_dandi_url(text, glob=True)
        asset_id = getattr(purl, "asset_id", None)
        glob = getattr(purl, "path", None)
        if isinstance(purl, da.AssetPathPrefixURL):
            glob = glob + "*"
        elif glob and glob.endswith("/"):
            glob += "*"
        parsed = (
            None
            if purl.dandiset_id is None
            else DandiSpec(purl.dandiset_id, purl.version_id, glob or None)
        )
        instance = purl.instance
    else:
        parsed, asset_id, instance = parse_dandi_spec(text), None, archive_instance()
    if version is not None and parsed is not None:
        if parsed.version not in (None, version):
            raise DandiError(
                f"{spec}: names version {parsed.version} but --version is {version}; give one."
            )
        parsed = DandiSpec(parsed.dandiset_id, version, parsed.glob)
    return instance, parsed, asset_id


def _dandiset(client, spec: str, parsed: DandiSpec, where: str):
    """The RemoteDandiset at the requested version (default: latest published, else draft)."""
    from dandi.exceptions import NotFoundError

    try:
        ds = client.get_dandiset(parsed.dandiset_id, lazy=False)
    except NotFoundError:
        raise DandiError(
            f"{spec}: no dandiset {parsed.dandiset_id} on {where}. Check the six-digit id "
            f"(DANDI_INSTANCE selects the archive); embargoed dandisets need an API key "
            f"in <INSTANCE>_API_KEY."
        ) from None
    if parsed.version is None or parsed.version == ds.version_id:
        return ds
    try:
        return ds.for_version(ds.draft_version if parsed.version == "draft" else parsed.version)
    except NotFoundError:
        versions = [v.identifier for v in ds.get_versions()]
        raise DandiError(
            f"{spec}: dandiset {parsed.dandiset_id} has no version {parsed.version}. "
            f"Available: {', '.join(versions)}."
        ) from None


def _glob_assets(client, ds, spec: str, glob: str) -> tuple[str, list]:
    """(the glob that matched, the assets); a glob without '*' that names a folder means its content."""
    assets = list(ds.get_assets_by_glob(glob, order="path"))
    if not assets and "*" not in glob:
        folder = glob.rstrip("/") + "/*"
        assets = list(ds.get_assets_by_glob(folder, order="path"))
        glob = folder if assets else glob
    if not assets:
        page = client.get(f"{ds.version_api_path}assets/", params={"page_size": 5, "order": "path"})
        shown = "\n  ".join(a["path"] for a in page["results"]) or "(none: the version is empty)"
        raise DandiError(
            f"{spec}: no asset of dandiset {ds.identifier} version {ds.version_id} matches "
            f"{glob!r} ('*' matches any characters, '/' included; matching ignores case). "
            f"{page['count']} assets exist, e.g.:\n  {shown}"
        )
    return glob, assets


@dataclass
class _Resolved:
    instance: object  # dandi.consts.DandiInstance
    dandiset: object | None  # dandi.dandiapi.RemoteDandiset at the resolved version
    assets: list  # dandi.dandiapi.RemoteAsset / BaseRemoteAsset, metadata fetched
    glob: str | None = None  # the glob that matched, when one was given
    asset_id: str | None = None


def _remote_assets(spec: str, version: str | None = None) -> _Resolved:
    """Resolve ``spec`` on the archive; every failure is a DandiError."""
    from dandi.dandiapi import DandiAPIClient
    from dandi.exceptions import NotFoundError

    instance, parsed, asset_id = _target(spec, version)
    where = instance.api
    with _archive_errors(spec, where), DandiAPIClient(dandi_instance=instance) as client:
        session = _timeout_session(stall_is_connection_error=True)
        session.headers.update(client.session.headers)
        client.session.close()
        client.session = session
        if os.environ.get(client.api_key_env_var):
            client.dandi_authenticate()
        glob, ds = None, None
        if parsed is None:
            try:
                assets = [client.get_asset(asset_id)]
            except NotFoundError:
                raise DandiError(f"{spec}: no asset {asset_id} on {where}.") from None
        else:
            ds = _dandiset(client, spec, parsed, where)
            if asset_id is not None:
                try:
                    assets = [ds.get_asset(asset_id)]
                except NotFoundError:
                    raise DandiError(
                        f"{spec}: dandiset {ds.identifier} version {ds.version_id} has no "
                        f"asset {asset_id}."
                    ) from None
            elif parsed.glob:
                glob, assets = _glob_assets(client, ds, spec, parsed.glob)
            else:
                assets = list(ds.get_assets(order="path"))
                if not assets:
                    raise DandiError(
                        f"{spec}: dandiset {ds.identifier} version {ds.version_id} has no assets."
                    )
        for a in assets:  # fetch metadata (digests, contentUrl) while the client is open
            a.get_raw_metadata()
        return _Resolved(instance, ds, assets, glob, asset_id)


def _as_source(asset, instance) -> DandiAsset:
    md = asset.get_raw_metadata()
    etag = (md.get("digest") or {}).get("dandi:dandi-etag", "")
    download_url = getattr(asset, "download_url", None) or asset.base_download_url
    api = instance.api.rstrip("/").lower()
    direct = [u for u in md.get("contentUrl", []) if not u.lower().startswith(api)]
    return DandiAsset(
        api_url=instance.api.rstrip("/"),
        dandiset_id=getattr(asset, "dandiset_id", None),
        version=getattr(asset, "version_id", None),
        path=asset.path,
        asset_id=asset.identifier,
        size=int(asset.size),
        etag=etag,
        download_url=download_url,
        content_url=direct[0] if direct else download_url,
    )


def resolve(spec: str, version: str | None = None) -> list[DandiAsset]:
    """The blob assets (files) a DANDI identifier or URL names, sorted by path.

    Args:
        spec: ``dandi:ID[@VERSION][/PATH_GLOB]`` or an archive URL (see :mod:`nwb_lfads.io.sources`).
        version: overrides the default version (latest published, else draft).

    Raises:
        DandiError: unknown dandiset, version or asset, a glob matching nothing (the message
            lists a few existing paths), or the archive unreachable after the client's retries.
    """
    from dandi.dandiapi import AssetType

    found = _remote_assets(spec, version)
    return [_as_source(a, found.instance) for a in found.assets if a.asset_type is AssetType.BLOB]


def resolve_one(spec: str) -> DandiAsset:
    """The single NWB asset ``spec`` names (for streaming one session)."""
    found = resolve(spec)
    assets = [a for a in found if a.path.lower().endswith(".nwb")] or found
    if len(assets) != 1:
        shown = "\n  ".join(str(a) for a in assets[:5])
        raise DandiError(
            f"{spec}: names {len(assets)} assets, but one file is needed here. Name one "
            f"by its path, e.g.:\n  {shown}"
        )
    return assets[0]


# ---- downloading ----------------------------------------------------------------------------
def _safe_name(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text)


def _run_downloader(
    purl, out_dir: Path, *, get_metadata: bool, preserve_tree: bool, progress: bool, what: str
) -> list[Path]:
    """Run dandi's Downloader for ``purl`` into ``out_dir``; return the asset files; raise on errors."""
    from dandi.consts import DOWNLOAD_SUFFIX  # where dandi keeps a partial download until complete
    from dandi.download import Downloader, DownloadExisting
    from tqdm.auto import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    downloader = Downloader(
        url=purl,
        output_dir=out_dir,
        existing=DownloadExisting.OVERWRITE_DIFFERENT,
        get_metadata=get_metadata,
        get_assets=True,
        preserve_tree=preserve_tree,
        jobs_per_zarr=None,
        on_error="raise",
    )
    status: dict[str, dict] = {}
    bars: dict[str, tqdm] = {}
    try:
        with _archive_errors(what, purl.instance.api):
            for rec in downloader.download_generator():
                path = rec["path"]
                st = status.setdefault(path, {})
                st.update({k: v for k, v in rec.items() if k != "path"})
                if "size" in rec and progress and path not in bars:
                    bars[path] = tqdm(
                        total=rec["size"], desc=path, unit="B", unit_scale=True, file=sys.stderr
                    )
                if "done" in rec and path in bars:
                    bars[path].update(rec["done"] - bars[path].n)
                if rec.get("status") in ("done", "error", "skipped") and path in bars:
                    bars.pop(path).close()
                if progress and rec.get("status") == "skipped" and not _is_metadata(path):
                    tqdm.write(f"{path}: already complete, skipped", file=sys.stderr)
    finally:
        for bar in bars.values():
            bar.close()
    files, failures = [], []
    for path, st in status.items():
        target = out_dir / path
        if st.get("checksum") == "differs":
            target.unlink(missing_ok=True)
            failures.append(
                f"{path}: checksum mismatch ({st.get('message')}); the file was removed, "
                f"run again to download it afresh"
            )
        elif st.get("status") == "error":
            failures.append(
                f"{path}: download failed after retries ({st.get('message')}); no incomplete "
                f"file was left at {target}; {_partial_note(target, DOWNLOAD_SUFFIX)}"
            )
        elif not _is_metadata(path):
            files.append(target)
    if failures:
        n_assets = sum(not _is_metadata(p) for p in status)
        raise DandiError(
            f"{what}: {len(failures)} of {n_assets} downloads from {purl.instance.api} "
            f"failed:\n  " + "\n  ".join(failures)
        )
    return files


def _is_metadata(path: str) -> bool:
    return Path(path).name == "dandiset.yaml" and len(Path(path).parts) <= 2


def _partial_note(target: Path, suffix: str) -> str:
    """Say what a failed download left: resumable bytes in dandi's partial folder, or nothing."""
    import shutil

    partial = target.with_name(target.name + suffix)
    received = (partial / "file").stat().st_size if (partial / "file").exists() else 0
    if received == 0:
        shutil.rmtree(partial, ignore_errors=True)
        return "nothing partial was left"
    return (
        f"the {received} bytes received are kept in {partial} and the next run resumes from there"
    )


def download(
    spec: str, out_dir: str | os.PathLike, version: str | None = None, *, progress: bool = True
) -> list[Path]:
    """Download a whole dandiset, or the assets matching a glob, keeping the archive's layout.

    Files land in ``out_dir/<dandiset id>/<asset path>`` (with ``dandiset.yaml`` beside them,
    as ``dandi download`` writes it). Each is checked against the archive's dandi-etag; files
    already complete are skipped, changed ones replaced, interrupted ones resumed.

    Args:
        spec: ``DANDISET[/PATH_GLOB]`` with or without ``dandi:`` (``000128``,
            ``dandi:000128/sub-Jenkins/*.nwb``, ``000128@draft``) or an archive URL.
        out_dir: destination folder (created).
        version: a version (``draft`` or published); default latest published, else draft.

    Returns:
        The local paths of the assets, sorted by archive path.

    Raises:
        DandiError: see :func:`resolve`; and downloads that failed after retries (the message
            says which and what was left).
    """
    from dandi.dandiarchive import AssetGlobURL, AssetIDURL, BaseAssetIDURL, DandisetURL

    found = _remote_assets(
        spec.strip(), version
    )  # a bare id is fine here: parse_dandi_spec takes it
    ds = found.dandiset
    if ds is None:  # an asset URL without its dandiset
        purl = BaseAssetIDURL(instance=found.instance, asset_id=found.asset_id)
    else:
        kw = dict(instance=found.instance, dandiset_id=ds.identifier, version_id=ds.version_id)
        if found.asset_id is not None:
            purl = AssetIDURL(asset_id=found.asset_id, **kw)
        elif found.glob is not None:
            purl = AssetGlobURL(path=found.glob, **kw)
        else:
            purl = DandisetURL(**kw)
    return _run_downloader(
        purl,
        Path(out_dir).expanduser(),
        get_metadata=ds is not None,
        preserve_tree=True,
        progress=progress,
        what=spec,
    )


def fetch_assets(assets: list[DandiAsset], cache_dir=None, *, progress: bool = True) -> list[Path]:
    """Download each asset into ``cache_dir/<instance>/<dandiset>/<version>/<path>``; return the paths."""
    from dandi.dandiarchive import AssetIDURL, BaseAssetIDURL
    from dandi.utils import get_instance

    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    out = []
    for asset in assets:
        with _archive_errors(str(asset), asset.api_url):
            instance = get_instance(asset.api_url)
        if asset.dandiset_id is None:
            purl = BaseAssetIDURL(instance=instance, asset_id=asset.asset_id)
            folder = root / _safe_name(instance.name) / "assets" / asset.asset_id
        else:
            purl = AssetIDURL(
                instance=instance,
                dandiset_id=asset.dandiset_id,
                version_id=asset.version,
                asset_id=asset.asset_id,
            )
            folder = (
                root
                / _safe_name(instance.name)
                / asset.dandiset_id
                / asset.version
                / Path(*asset.path.split("/")[:-1])
            )
        files = _run_downloader(
            purl,
            folder,
            get_metadata=False,
            preserve_tree=False,
            progress=progress,
            what=str(asset),
        )
        out.append(files[0])
    return out


# ---- streaming --------------------------------------------------------------------------------
#: (connect, read) seconds for the requests of listing (:func:`_remote_assets`) and streaming
#: (:func:`open_asset`), unless ``$NWB_LFADS_NETWORK_TIMEOUT`` (seconds, both) says otherwise: a
#: stalled connection fails and is retried instead of blocking forever (remfile retries each range
#: read up to 8 times; the dandi client's own retries cover connection errors, which a stalled read
#: is reported as). Downloads run dandi's Downloader with dandi's own timeouts.
NETWORK_TIMEOUT_S = (10.0, 60.0)
TIMEOUT_ENV = "NWB_LFADS_NETWORK_TIMEOUT"


def network_timeout() -> tuple[float, float]:
    """(connect, read) timeout in seconds: ``$NWB_LFADS_NETWORK_TIMEOUT`` or :data:`NETWORK_TIMEOUT_S`."""
    value = os.environ.get(TIMEOUT_ENV, "").strip()
    if not value:
        return NETWORK_TIMEOUT_S
    try:
        seconds = float(value)
        if not seconds > 0:
            raise ValueError
    except ValueError:
        raise DandiError(
            f"{TIMEOUT_ENV}={value!r} is not a positive number of seconds; "
            f"unset it for the default {NETWORK_TIMEOUT_S[1]:g} s."
        ) from None
    return (seconds, seconds)


def _timeout_session(stall_is_connection_error: bool = False):
    """A ``requests.Session`` whose requests default to :func:`network_timeout`.

    With ``stall_is_connection_error``, a read timeout is raised as ``requests.ConnectionError``
    (which the dandi client retries; it does not retry ``ReadTimeout``).
    """
    import requests

    timeout_s = network_timeout()

    class _Session(requests.Session):
        def request(self, method, url, *args, timeout=None, **kwargs):
            try:
                return super().request(method, url, *args, timeout=timeout or timeout_s, **kwargs)
            except requests.ReadTimeout as exc:
                if not stall_is_connection_error:
                    raise
                raise requests.ConnectionError(
                    f"no answer within {timeout_s[1]:g} s ({exc})"
                ) from exc

    return _Session()


def _probe_blob(asset: DandiAsset, tries: int = 4) -> None:
    """Check that ``asset``'s blob answers range requests and has the size the archive lists.

    One ``Range: bytes=0-0`` GET (one byte travels; remfile's own probe is a GET of the whole
    blob, aborted after the headers), with :func:`network_timeout`; connection errors, timeouts,
    429 and 5xx answers are retried ``tries`` times in all with a short backoff; other 4xx
    answers are final. Raises ``RuntimeError`` naming the status or the size mismatch.
    """
    import time

    import requests

    for attempt in range(tries):
        if attempt:
            time.sleep(0.2 * 2 ** (attempt - 1))
        try:
            with requests.get(
                asset.content_url,
                headers={"Range": "bytes=0-0"},
                stream=True,
                timeout=network_timeout(),
            ) as resp:
                status, reason, headers = resp.status_code, resp.reason, resp.headers
        except requests.RequestException:
            if attempt == tries - 1:
                raise
            continue
        if status in (200, 206):
            crange = headers.get("Content-Range", "")
            size = (
                int(crange.rsplit("/", 1)[1])
                if status == 206 and "/" in crange
                else int(headers.get("Content-Length", -1))
            )
            if size != asset.size:
                raise RuntimeError(f"the blob has {size} bytes, the archive lists {asset.size}")
            return
        if (400 <= status < 500 and status != 429) or attempt == tries - 1:
            raise RuntimeError(f"HTTP {status} {reason}")


@contextlib.contextmanager
def open_asset(asset: DandiAsset, cache_dir=None) -> Iterator[pynwb.NWBFile]:  # noqa: F821
    """Open a DANDI asset read-only without downloading it: HTTP range reads through ``remfile``.

    Blocks that were read are kept in ``<cache_dir>/.remfile-blocks`` (remfile's disk cache;
    ``cache_dir`` defaults to :func:`default_cache_dir`), so reopening the asset fetches nothing.
    """
    import h5py
    import pynwb
    import remfile

    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    blocks = root / ".remfile-blocks"
    try:
        _probe_blob(asset)
    except DandiError:
        raise
    except Exception as exc:
        raise DandiError(
            f"{asset}: cannot stream {asset.content_url} ({type(exc).__name__}: {_reason(exc)}); "
            f"nothing was opened. Check the network connection; embargoed assets cannot be "
            f"streamed: download them ('nwb-lfads download', with <INSTANCE>_API_KEY set)."
        ) from None
    # the size is known (from the archive and the probe), so remfile makes no length request of its own;
    # its range reads go through a session whose every request has a timeout (remfile retries on it)
    rfile = remfile.File(
        asset.content_url, disk_cache=remfile.DiskCache(str(blocks)), _size=asset.size
    )
    if getattr(rfile, "session", None) is not None:
        rfile.session.close()
    rfile.session = _timeout_session()
    try:
        h5 = h5py.File(rfile, "r")
        io = pynwb.NWBHDF5IO(file=h5, mode="r", load_namespaces=True)
        nwbfile = io.read()
    except Exception as exc:
        raise InputFileError(
            f"{asset}: cannot be read as NWB while streaming from {asset.content_url} "
            f"({type(exc).__name__}: {_reason(exc)}). Download it with "
            f"'nwb-lfads download' and check the file."
        ) from None
    try:
        yield nwbfile
    finally:
        io.close()
        h5.close()
        if getattr(rfile, "session", None) is not None:
            rfile.session.close()
