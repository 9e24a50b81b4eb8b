"""A fake DANDI archive on 127.0.0.1 for tests: the subset of the REST API the ``dandi`` client uses.

The real client (``dandi.dandiapi.DandiAPIClient``, ``dandi.download``) talks to it unchanged;
point it there the way one points the client at any archive, ``DANDI_INSTANCE=<server url>``:
``dandi.utils.get_instance`` asks ``<url>/server-info`` (then ``<url>/api/info/``) for the API
URL, exactly as it does for a staging or private archive.

Served routes (everything else is answered 404 and recorded in ``FakeArchive.unknown`` so a
gap in this fake shows up as a test failure rather than a silent pass; exceptions in handlers
go to ``FakeArchive.errors``)::

    GET  /server-info, /api/info/                          server info (API url, versions)
    GET  /api/dandisets/{id}/                              dandiset (published + draft version)
    GET  /api/dandisets/{id}/versions/                     paginated versions
    GET  /api/dandisets/{id}/versions/{v}/                 dandiset metadata (dandiset.yaml)
    GET  /api/dandisets/{id}/versions/{v}/info/            version info
    GET  /api/dandisets/{id}/versions/{v}/assets/          paginated assets (?path= prefix, ?glob=, ?order=)
    GET  /api/dandisets/{id}/versions/{v}/assets/{a}/      asset metadata (contentUrl, digests)
    GET  /api/dandisets/{id}/versions/{v}/assets/{a}/info/ asset info with metadata
    GET  /api/[dandisets/{id}/versions/{v}/]assets/{a}/download/   302 to the blob
    GET  /api/assets/{a}/[info/]                           asset metadata without a dandiset
    GET|HEAD /blobs/{blob}                                 the bytes, honouring ``Range``

Faults for error tests: ``FakeArchive.fail(route_kind, mode, times)`` with route kinds
``"blob"`` or ``"api"`` and modes ``"503"`` (with ``Retry-After: 0``, as S3 and the archive
send when throttling), ``"truncate"`` (blob only: full ``Content-Length``, half the bytes,
then the connection drops) or ``"stall"`` (no answer until ``FakeArchive.release_stalls()``, at
most 120 s, then the connection drops: a client without a read timeout waits that long).
``after=n`` lets ``n`` requests of that kind through first.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

CREATED = "2022-01-13T04:00:00.000000Z"
DEFAULT_PAGE_SIZE = 2  # small, so that the client's pagination (page 2+ in threads) runs


@dataclass
class FakeAsset:
    """One asset of one version: an archive path backed by a local file (its blob)."""

    path: str
    file: Path
    asset_id: str
    blob_id: str
    size: int
    etag: str
    sha256: str


@dataclass
class FakeVersion:
    identifier: str  # "draft" or a published version like "0.220113.0400"
    assets: dict[str, FakeAsset] = field(default_factory=dict)  # by path

    @property
    def size(self) -> int:
        return sum(a.size for a in self.assets.values())


@dataclass
class FakeDandiset:
    identifier: str
    name: str
    versions: dict[str, FakeVersion] = field(default_factory=dict)  # by identifier, oldest first

    @property
    def published(self) -> list[FakeVersion]:
        return [v for k, v in self.versions.items() if k != "draft"]


class FakeArchive:
    """The archive's state (dandisets, versions, assets, blob files) and a request log."""

    def __init__(self, blob_dir: Path, page_size: int = DEFAULT_PAGE_SIZE):
        self.blob_dir = Path(blob_dir)
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.page_size = page_size
        self.dandisets: dict[str, FakeDandiset] = {}
        self.blobs: dict[str, FakeAsset] = {}
        self.url = ""  # set by serve()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path+query, Range header)
        self.unknown: list[str] = []  # requests to routes this fake does not implement
        self.errors: list[str] = []  # exceptions raised while handling a request
        self._faults: dict[str, list[str | None]] = {"blob": [], "api": []}
        self._unstall = threading.Event()
        self._lock = threading.Lock()

    # ---- building the archive -------------------------------------------------------------
    def add_version(
        self, dandiset_id: str, version: str, files: dict[str, Path], name: str = ""
    ) -> FakeVersion:
        """Add ``version`` ("draft" or published) of ``dandiset_id`` holding ``{archive path: local file}``."""
        from dandi.support.digests import (
            get_digest,  # dandi's own digest: the etag the archive stores
        )

        ds = self.dandisets.setdefault(
            dandiset_id, FakeDandiset(dandiset_id, name or f"Dandiset {dandiset_id}")
        )
        ver = FakeVersion(version)
        for path, src in sorted(files.items()):
            data = Path(src).read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            blob_id = f"{sha[:3]}/{sha[3:6]}/{sha}"
            blob_file = self.blob_dir / sha
            if not blob_file.exists():
                shutil.copyfile(src, blob_file)
            asset_id = hashlib.md5(f"{dandiset_id}/{path}/{sha}".encode()).hexdigest()
            asset_id = f"{asset_id[:8]}-{asset_id[8:12]}-{asset_id[12:16]}-{asset_id[16:20]}-{asset_id[20:]}"
            asset = FakeAsset(
                path,
                blob_file,
                asset_id,
                blob_id,
                len(data),
                get_digest(blob_file, "dandi-etag"),
                sha,
            )
            ver.assets[path] = asset
            self.blobs[blob_id] = asset
        ds.versions[version] = ver
        if "draft" in ds.versions:  # keep the draft last (the real archive lists it that way)
            ds.versions["draft"] = ds.versions.pop("draft")
        return ver

    def fail(self, kind: str, mode: str, times: int = 1, after: int = 0) -> None:
        """Make ``times`` requests of ``kind`` ("blob"/"api") fail with ``mode``, after ``after`` good ones
        (counted from the end of the faults already queued)."""
        with self._lock:
            self._faults[kind].extend([None] * after + [mode] * times)

    def _take_fault(self, kind: str) -> str | None:
        with self._lock:
            return self._faults[kind].pop(0) if self._faults[kind] else None

    def release_stalls(self) -> None:
        """End the stalls in progress (their connections drop) and clear the faults still queued."""
        with self._lock:
            self._faults = {"blob": [], "api": []}
            self._unstall.set()
            self._unstall = threading.Event()

    def _stall(self, handler: BaseHTTPRequestHandler) -> None:
        self._unstall.wait(120)
        handler.close_connection = True

    def blob_requests(self) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[1].startswith("/blobs/")]

    # ---- JSON documents ---------------------------------------------------------------------
    @property
    def api(self) -> str:
        return f"{self.url}/api"

    def version_doc(self, ds: FakeDandiset, ver: FakeVersion) -> dict:
        return {
            "version": ver.identifier,
            "name": ds.name,
            "asset_count": len(ver.assets),
            "size": ver.size,
            "created": CREATED,
            "modified": CREATED,
            "status": "Published" if ver.identifier != "draft" else "Valid",
        }

    def dandiset_doc(self, ds: FakeDandiset) -> dict:
        published = ds.published
        return {
            "identifier": ds.identifier,
            "created": CREATED,
            "modified": CREATED,
            "contact_person": "Test, Person",
            "embargo_status": "OPEN",
            "most_recent_published_version": self.version_doc(ds, published[-1])
            if published
            else None,
            "draft_version": self.version_doc(ds, ds.versions.get("draft") or published[-1]),
        }

    def dandiset_metadata(self, ds: FakeDandiset, ver: FakeVersion) -> dict:
        return {
            "schemaKey": "Dandiset",
            "schemaVersion": "0.6.4",
            "identifier": f"DANDI:{ds.identifier}",
            "id": f"DANDI:{ds.identifier}/{ver.identifier}",
            "name": ds.name,
            "version": ver.identifier,
            "url": f"{self.url}/dandiset/{ds.identifier}/{ver.identifier}",
            "license": ["spdx:CC-BY-4.0"],
            "description": "fake dandiset for nwb-lfads tests",
        }

    def asset_doc(self, asset: FakeAsset) -> dict:
        return {
            "asset_id": asset.asset_id,
            "blob": asset.blob_id,
            "zarr": None,
            "path": asset.path,
            "size": asset.size,
            "created": CREATED,
            "modified": CREATED,
        }

    def asset_metadata(self, asset: FakeAsset) -> dict:
        return {
            "schemaKey": "Asset",
            "schemaVersion": "0.6.4",
            "id": f"dandiasset:{asset.asset_id}",
            "identifier": asset.asset_id,
            "path": asset.path,
            "contentSize": asset.size,
            "encodingFormat": "application/x-nwb",
            "digest": {"dandi:dandi-etag": asset.etag, "dandi:sha2-256": asset.sha256},
            "contentUrl": [
                f"{self.api}/assets/{asset.asset_id}/download/",
                f"{self.url}/blobs/{asset.blob_id}",
            ],
            "blobDateModified": "2021-11-22T10:00:00+00:00",
            "dateModified": CREATED,
        }

    def info_doc(self) -> dict:
        return {
            "schema_version": "0.6.4",
            "schema_url": "",
            "version": "0.4.0",
            "cli-minimal-version": "0.60.0",
            "cli-bad-versions": [],
            "services": {
                "api": {"url": self.api},
                "webui": {"url": self.url},
                "jupyterhub": {"url": self.url},
            },
        }

    # ---- serving ----------------------------------------------------------------------------
    def find_asset(self, asset_id: str) -> FakeAsset | None:
        for ds in self.dandisets.values():
            for ver in ds.versions.values():
                for asset in ver.assets.values():
                    if asset.asset_id == asset_id:
                        return asset
        return None


def _glob_regex(glob: str) -> re.Pattern:
    # the archive's own rule: only '*' is special, it matches across '/', case-insensitive
    return re.compile(re.escape(glob).replace(r"\*", ".*"), flags=re.I)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    archive: FakeArchive  # set on the subclass made by serve()

    def log_message(self, format, *args):  # quiet; the archive keeps its own log
        pass

    # -- helpers
    def _send(
        self, status: int, body: bytes = b"", ctype: str = "application/json", headers=None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, doc, status: int = 200) -> None:
        self._send(status, json.dumps(doc).encode())

    def _not_found(self) -> None:
        self._json({"detail": "Not found."}, 404)

    def _paginate(self, items: list, query: dict) -> None:
        size = int(query.get("page_size", [self.archive.page_size])[0])
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * size : page * size]
        nxt = None
        if page * size < len(items):
            q = {k: v[0] for k, v in query.items() if k != "page"}
            q["page"] = str(page + 1)
            nxt = f"{self.archive.url}{urlsplit(self.path).path}?" + "&".join(
                f"{k}={v}" for k, v in q.items()
            )
        self._json({"count": len(items), "next": nxt, "previous": None, "results": chunk})

    # -- dispatch
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        arc = self.archive
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        with arc._lock:
            arc.requests.append((self.command, self.path, self.headers.get("Range")))
        if path.startswith("/blobs/"):
            return self._blob(path[len("/blobs/") :])
        fault = arc._take_fault("api") if path.startswith("/api/") else None
        if fault == "stall":
            return arc._stall(self)
        if fault:
            return self._send(503, b"try later", "text/plain", {"Retry-After": "0"})
        if path in ("/server-info", "/api/info/"):
            return self._json(arc.info_doc())
        m = re.fullmatch(r"/api/assets/([^/]+)/(info/|download/)?", path)
        if m:
            asset = arc.find_asset(m.group(1))
            if asset is None:
                return self._not_found()
            if m.group(2) == "download/":
                return self._send(
                    302, b"", "text/plain", {"Location": f"{arc.url}/blobs/{asset.blob_id}"}
                )
            if m.group(2) == "info/":
                return self._json({**arc.asset_doc(asset), "metadata": arc.asset_metadata(asset)})
            return self._json(arc.asset_metadata(asset))
        m = re.fullmatch(r"/api/dandisets/(\d{6})/(.*)", path)
        if m:
            ds = arc.dandisets.get(m.group(1))
            if ds is None:
                return self._not_found()
            return self._dandiset(ds, m.group(2), query)
        arc.unknown.append(f"{self.command} {self.path}")
        return self._not_found()

    def _dandiset(self, ds: FakeDandiset, rest: str, query: dict) -> None:
        arc = self.archive
        if rest == "":
            return self._json(arc.dandiset_doc(ds))
        if rest == "versions/":
            return self._paginate([arc.version_doc(ds, v) for v in ds.versions.values()], query)
        m = re.fullmatch(r"versions/([^/]+)/(info/|assets/(?:([^/]+)/(info/|download/)?)?)?", rest)
        if not m:
            arc.unknown.append(f"{self.command} {self.path}")
            return self._not_found()
        ver = ds.versions.get(m.group(1))
        if ver is None:
            return self._not_found()
        sub, asset_id, action = m.group(2), m.group(3), m.group(4)
        if sub is None:
            return self._json(arc.dandiset_metadata(ds, ver))
        if sub == "info/":
            return self._json(
                {
                    **arc.version_doc(ds, ver),
                    "metadata": arc.dandiset_metadata(ds, ver),
                    "asset_validation_errors": [],
                    "version_validation_errors": [],
                }
            )
        if asset_id is None:
            assets = list(ver.assets.values())
            if "path" in query:
                assets = [a for a in assets if a.path.startswith(query["path"][0])]
            if "glob" in query:
                rx = _glob_regex(query["glob"][0])
                assets = [a for a in assets if rx.fullmatch(a.path)]
            order = query.get("order", ["created"])[0].lstrip("-")
            if order == "path":
                assets.sort(key=lambda a: a.path, reverse=query["order"][0].startswith("-"))
            return self._paginate([arc.asset_doc(a) for a in assets], query)
        asset = next((a for a in ver.assets.values() if a.asset_id == asset_id), None)
        if asset is None:
            return self._not_found()
        if action == "download/":
            return self._send(
                302, b"", "text/plain", {"Location": f"{arc.url}/blobs/{asset.blob_id}"}
            )
        if action == "info/":
            return self._json({**arc.asset_doc(asset), "metadata": arc.asset_metadata(asset)})
        return self._json(arc.asset_metadata(asset))

    def _blob(self, blob_id: str) -> None:
        arc = self.archive
        asset = arc.blobs.get(blob_id)
        if asset is None:
            return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        fault = arc._take_fault("blob") if self.command == "GET" else None
        if fault == "503":
            return self._send(
                503,
                b"<Error><Code>SlowDown</Code></Error>",
                "application/xml",
                {"Retry-After": "0"},
            )
        if fault == "stall":
            return arc._stall(self)
        data = asset.file.read_bytes()
        status, headers = 200, {"Accept-Ranges": "bytes", "ETag": f'"{asset.etag}"'}
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if not m or int(m.group(1)) >= len(data):
                return self._send(
                    416, b"", "application/xml", {"Content-Range": f"bytes */{len(data)}"}
                )
            start = int(m.group(1))
            stop = min(int(m.group(2)) + 1, len(data)) if m.group(2) else len(data)
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
            data, status = data[start:stop], 206
        if fault == "truncate":
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        try:
            self._send(status, data, "application/octet-stream", headers)
        except (BrokenPipeError, ConnectionResetError):  # a client that read only the headers
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    archive: FakeArchive

    def handle_error(self, request, client_address):
        """Record a handler's failure (tests assert none) instead of printing it to stderr."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionResetError, BrokenPipeError)):  # clients closing: normal
            self.archive.errors.append(f"{type(exc).__name__}: {exc}")


def serve(archive: FakeArchive) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start the archive on 127.0.0.1 at a free port; sets ``archive.url``. Stop with ``server.shutdown()``."""
    handler = type("FakeArchiveHandler", (_Handler,), {"archive": archive})
    server = _Server(("127.0.0.1", 0), handler)
    server.archive = archive
    archive.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-dandi", daemon=True)
    thread.start()
    return server, thread


def glob_matches(glob: str, paths: list[str]) -> list[str]:
    """The archive's glob rule applied to ``paths`` (for tests' expectations)."""
    rx = _glob_regex(glob)
    return [p for p in paths if rx.fullmatch(p)]


__all__ = ["FakeArchive", "FakeAsset", "serve", "glob_matches"]
