"""DANDI access against a fake archive on 127.0.0.1, through the real ``dandi`` client.

The client is pointed at the fake server the way a user points it at any archive,
``DANDI_INSTANCE=<url>`` (set for every test here, so no request can reach the real archive).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

# no version check over the network (read when a client is made); no checksum cache in ~/.cache
# (read when dandi.support.digests is first imported)
os.environ.setdefault("DANDI_NO_ET", "1")
os.environ.setdefault("DANDI_CACHE", "ignore")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from nwb_lfads.cli.main import main  # noqa: E402

from nwb_lfads.errors import DandiError, InputFileError  # noqa: E402
from nwb_lfads.io import read  # noqa: E402
from nwb_lfads.io.open import open_nwb  # noqa: E402
from nwb_lfads.io.sources import DandiAsset, expand_sources, localize, parse_dandi_spec  # noqa: E402
from nwb_lfads.synthetic import simulate  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from dandi_server import FakeArchive, serve  # noqa: E402

PUBLISHED = "0.220113.0400"
JENKINS = "sub-Jenkins/sub-Jenkins_ses-small_desc-test_ecephys.nwb"
A8604 = "sub-A8604/sub-A8604_ses-211122_ecephys.nwb"
SIM = "sub-Jenkins/sub-Jenkins_ses-sim_ecephys.nwb"


@pytest.fixture(scope="module")
def archive(tmp_path_factory, mc_maze_small, a8604):
    """000128: published (Jenkins, A8604, README) + draft (also a simulated session);
    000140: draft only (Jenkins); 000200: one asset whose served bytes do not match its etag."""
    root = tmp_path_factory.mktemp("fake-dandi")
    readme = root / "README.md"
    readme.write_text("fake dandiset\n")
    sim = simulate(
        root / "sim", sessions=1, seed=0, n_conditions=2, trials_per_condition=2, n_units=6
    )[0]
    arc = FakeArchive(root / "blobs")
    published = {JENKINS: mc_maze_small, A8604: a8604, "README.md": readme}
    arc.add_version("000128", PUBLISHED, published, name="MC_Maze (fake)")
    arc.add_version("000128", "draft", {**published, SIM: sim})
    arc.add_version("000140", "draft", {JENKINS: mc_maze_small}, name="MC_Maze_Small (fake)")
    bad = root / "bad.nwb"
    shutil.copyfile(a8604, bad)
    with open(bad, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x01")
    corrupt = arc.add_version("000200", "0.230101.0000", {"sub-x/sub-x_ecephys.nwb": bad}).assets[
        "sub-x/sub-x_ecephys.nwb"
    ]
    with open(corrupt.file, "r+b") as fh:  # the blob store now serves bytes the etag does not match
        fh.seek(2000)
        fh.write(b"\x02")
    server, _ = serve(arc)
    arc.sources = {JENKINS: mc_maze_small, A8604: a8604, SIM: sim, "README.md": readme}
    yield arc
    server.shutdown()


@pytest.fixture(autouse=True)
def dandi_env(archive, monkeypatch, tmp_path):
    monkeypatch.setenv("DANDI_INSTANCE", archive.url)
    monkeypatch.setenv("NWB_LFADS_CACHE_DIR", str(tmp_path / "cache"))
    import dandi.dandiapi
    import dandi.download

    # keep the client's retries short: no random back-off between download attempts, two API tries
    monkeypatch.setattr(dandi.download, "random", SimpleNamespace(random=lambda: 0.0))
    monkeypatch.setattr(dandi.dandiapi, "REQUEST_RETRIES", 2)
    archive.requests.clear()
    archive.errors.clear()
    for faults in archive._faults.values():
        faults.clear()
    yield
    assert archive.unknown == [], f"requests the fake archive does not implement: {archive.unknown}"
    assert archive.errors == [], f"the fake archive failed: {archive.errors}"


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _assert_user_error(result, pattern):
    assert result.exit_code == 2, result.output
    assert re.search(pattern, result.output, flags=re.S), result.output
    assert "Traceback" not in result.output


# ---- parsing and expanding ------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, expected",
    [
        ("dandi:000128", ("000128", None, None)),
        ("DANDI:000128/0.220113.0400", ("000128", PUBLISHED, None)),
        ("dandi:000128@draft/sub-Jenkins/", ("000128", "draft", "sub-Jenkins/*")),
        ("000128/sub-Jenkins/*.nwb", ("000128", None, "sub-Jenkins/*.nwb")),
    ],
)
def test_parse_dandi_spec(spec, expected):
    parsed = parse_dandi_spec(spec)
    assert (parsed.dandiset_id, parsed.version, parsed.glob) == expected


def test_parse_dandi_spec_errors():
    with pytest.raises(DandiError, match="not a DANDI identifier"):
        parse_dandi_spec("dandi:12")
    with pytest.raises(DandiError, match="'bogus' is not a DANDI version"):
        parse_dandi_spec("dandi:000128@bogus")


def test_expand_defaults_to_latest_published_version(archive):
    from dandi.support.digests import get_digest

    sources = expand_sources(["dandi:000128"])
    assert [s.path for s in sources] == [A8604, JENKINS]  # sorted, README.md left out
    assert {s.version for s in sources} == {PUBLISHED}
    jenkins = sources[1]
    assert jenkins.size == archive.sources[JENKINS].stat().st_size
    assert jenkins.etag == get_digest(archive.sources[JENKINS], "dandi-etag")
    assert jenkins.content_url.startswith(f"{archive.url}/blobs/")
    assert str(jenkins) == f"dandi:000128@{PUBLISHED}/{JENKINS}"


def test_expand_draft_only_dandiset_and_version_glob(archive):
    assert [(s.version, s.path) for s in expand_sources(["dandi:000140"])] == [("draft", JENKINS)]
    drafted = expand_sources(
        ["dandi:000128@draft/sub-jenkins/*.nwb"]
    )  # the archive's glob ignores case
    assert [s.path for s in drafted] == [SIM, JENKINS]
    assert [s.path for s in expand_sources(["dandi:000128@draft/sub-Jenkins"])] == [
        SIM,
        JENKINS,
    ]  # a folder


def test_expand_archive_urls(archive):
    gui = expand_sources([f"{archive.url}/dandiset/000128/draft"])
    assert [s.path for s in gui] == [A8604, SIM, JENKINS]
    folder = expand_sources([f"{archive.url}/dandiset/000128/draft/files?location=sub-Jenkins/"])
    assert [s.path for s in folder] == [SIM, JENKINS]
    asset = gui[2]
    by_url = expand_sources(
        [f"{archive.api}/dandisets/000128/versions/draft/assets/{asset.asset_id}/download/"]
    )
    assert by_url == [asset]
    bare = expand_sources([f"{archive.api}/assets/{asset.asset_id}/download/"])
    assert [(s.dandiset_id, s.path, s.etag) for s in bare] == [(None, JENKINS, asset.etag)]


def test_expand_local_paths_and_globs(tmp_path, mc_maze_small, a8604):
    shutil.copyfile(mc_maze_small, tmp_path / "b.nwb")
    shutil.copyfile(a8604, tmp_path / "a.nwb")
    assert expand_sources([str(tmp_path / "*.nwb")]) == [tmp_path / "a.nwb", tmp_path / "b.nwb"]
    assert expand_sources([tmp_path / "b.nwb"]) == [tmp_path / "b.nwb"]
    with pytest.raises(InputFileError, match=r"none\*\.nwb: the glob matches no files"):
        expand_sources([str(tmp_path / "none*.nwb")])


def test_expand_errors_name_what_exists():
    with pytest.raises(DandiError, match="no dandiset 000999 on http://127.0.0.1"):
        expand_sources(["dandi:000999"])
    with pytest.raises(DandiError, match=rf"has no version 9.9.9. Available: {PUBLISHED}, draft"):
        expand_sources(["dandi:000128@9.9.9"])
    with pytest.raises(
        DandiError, match=rf"matches 'sub-Nobody/\*.nwb'.*3 assets exist.*\n  README.md\n  {A8604}"
    ):
        expand_sources(["dandi:000128/sub-Nobody/*.nwb"])
    with pytest.raises(DandiError, match=r"matches 1 asset\(s\) but no .nwb file \(README.md\)"):
        expand_sources(["dandi:000128/README*"])
    with pytest.raises(DandiError, match="https://example.invalid/x.nwb: not a DANDI archive URL"):
        expand_sources(["https://example.invalid/x.nwb"])  # refused before any request


# ---- downloading ------------------------------------------------------------------------------
def test_download_dandiset_byte_identical(archive, tmp_path):
    result = _invoke("download", "000128", "--out", tmp_path, "--quiet")
    assert result.exit_code == 0, result.output
    for path in (JENKINS, A8604, "README.md"):
        assert (tmp_path / "000128" / path).read_bytes() == archive.sources[path].read_bytes()
    assert (tmp_path / "000128" / "dandiset.yaml").exists()
    assert not (
        tmp_path / "000128" / SIM
    ).exists()  # the draft-only session is not in the published version
    assert "3 file(s)" in result.output


def test_download_glob_of_a_version_keeps_layout(archive, tmp_path):
    from nwb_lfads.io.dandi import download

    paths = download("dandi:000128/sub-Jenkins/*.nwb", tmp_path, version="draft", progress=False)
    assert paths == [tmp_path / "000128" / SIM, tmp_path / "000128" / JENKINS]
    assert all(
        p.read_bytes()
        == archive.sources[p.relative_to(tmp_path / "000128").as_posix()].read_bytes()
        for p in paths
    )
    assert not (tmp_path / "000128" / A8604).exists()
    with pytest.raises(DandiError, match="names version draft but --version is 0.220113.0400"):
        download("dandi:000128@draft", tmp_path, version=PUBLISHED)


def test_download_skips_complete_files_and_replaces_changed_ones(archive, tmp_path):
    from nwb_lfads.io.dandi import download

    paths = download("000140", tmp_path, progress=False)
    assert len(archive.blob_requests()) == 1
    mtime = paths[0].stat().st_mtime_ns
    archive.requests.clear()
    result = _invoke("download", "dandi:000140", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "already complete, skipped" in result.output
    assert archive.blob_requests() == [] and paths[0].stat().st_mtime_ns == mtime
    data = bytearray(paths[0].read_bytes())  # same size, one byte changed: the etag tells
    data[5000] ^= 0xFF
    paths[0].write_bytes(bytes(data))
    download("000140", tmp_path, progress=False)
    assert len(archive.blob_requests()) == 1
    assert paths[0].read_bytes() == archive.sources[JENKINS].read_bytes()


def test_interrupted_download_resumes_from_received_bytes(archive, tmp_path, monkeypatch):
    from dandi.dandiapi import BaseRemoteAsset

    from nwb_lfads.io.dandi import download

    # dandi writes what arrives in 8 MB chunks (DANDI_MAX_CHUNK_SIZE, read when dandi is first
    # imported, here by its pytest plugin): use 64 KB so that half a small file is kept
    monkeypatch.setattr(BaseRemoteAsset.get_download_file_iter, "__defaults__", (1 << 16,))
    size = archive.sources[JENKINS].stat().st_size
    archive.fail("blob", "truncate", 1)  # half the bytes, then the connection drops
    (path,) = download("000140", tmp_path, progress=False)
    assert path.read_bytes() == archive.sources[JENKINS].read_bytes()
    ranges = [r for _, _, r in archive.blob_requests()]
    assert len(ranges) == 2 and ranges[0] is None and re.fullmatch(r"bytes=(\d+)-", ranges[1])
    assert 0 < int(ranges[1][6:-1]) <= size // 2


def test_localize_downloads_dandi_assets_into_the_cache(archive, tmp_path, a8604):
    sources = expand_sources(["dandi:000128@draft/sub-Jenkins/*", a8604])
    local = localize(sources, cache_dir=tmp_path / "c", progress=False)
    assert local[2] == a8604
    assert local[:2] == [
        tmp_path / "c" / archive.url[7:].replace(":", "_") / "000128" / "draft" / p
        for p in (SIM, JENKINS)
    ]
    assert [p.read_bytes() for p in local[:2]] == [
        archive.sources[SIM].read_bytes(),
        archive.sources[JENKINS].read_bytes(),
    ]
    archive.requests.clear()
    assert localize(sources, cache_dir=tmp_path / "c", progress=False) == local
    assert archive.blob_requests() == []


# ---- streaming --------------------------------------------------------------------------------
def _ranges(requests):
    spans = []
    for _, _, rng in requests:
        start, stop = rng[6:].split("-")
        spans.append((int(start), int(stop)))
    return spans


def test_open_nwb_streams_one_asset_with_range_requests(archive, tmp_path):
    size = archive.sources[JENKINS].stat().st_size
    with open_nwb("dandi:000140/sub-Jenkins/*.nwb") as nwbfile:
        assert len(nwbfile.units) == 107
        assert nwbfile.trials is not None and len(nwbfile.trials) == 100
    blob = archive.blob_requests()
    assert blob[0][2] == "bytes=0-0"  # the probe: one byte, whose Content-Range gives the size
    covered = set()
    for start, stop in _ranges(blob[1:]):
        covered.update(range(start // 4096, stop // 4096 + 1))
    assert covered and len(covered) * 4096 < size  # only the parts read travelled
    assert not list((tmp_path / "cache" / "dandi").glob("**/*.nwb"))  # nothing downloaded
    archive.requests.clear()
    with open_nwb(
        expand_sources(["dandi:000140"])[0]
    ) as nwbfile:  # a DandiAsset; blocks now cached
        assert len(nwbfile.units) == 107
    assert [r[2] for r in archive.blob_requests()] == ["bytes=0-0"]  # only the probe


@pytest.mark.timeout(60)  # a client without read timeouts would wait for the stalls (120 s)
def test_stalled_requests_time_out_and_are_retried(archive, monkeypatch):
    monkeypatch.setenv("NWB_LFADS_NETWORK_TIMEOUT", "0.5")
    archive.requests.clear()
    archive.fail("api", "stall")  # the first API request of the listing
    archive.fail("blob", "stall")  # the probe
    archive.fail("blob", "stall", after=1)  # the first range read
    try:
        asset = expand_sources(["dandi:000140"])[0]
        with open_nwb(asset) as nwbfile:
            assert len(nwbfile.units) == 107
    finally:
        archive.release_stalls()
    api = [r[1] for r in archive.requests if r[1].startswith("/api/")]
    assert len(api) >= 2 and api[0] == api[1]  # asked again after the stall
    ranges = [r[2] for r in archive.blob_requests()]
    assert ranges[:2] == ["bytes=0-0", "bytes=0-0"]  # the probe stalled and was asked again
    assert len(ranges) >= 4 and ranges[2] == ranges[3]  # so was the first range read (by remfile)


def test_a_bad_network_timeout_setting_is_named(monkeypatch):
    monkeypatch.setenv("NWB_LFADS_NETWORK_TIMEOUT", "soon")
    _assert_user_error(
        _invoke("inspect", "dandi:000140/sub-Jenkins/*.nwb"),
        r"NWB_LFADS_NETWORK_TIMEOUT='soon' is not a positive number of seconds",
    )


def test_open_nwb_needs_exactly_one_asset():
    with pytest.raises(
        DandiError, match=r"names 2 assets, but one file is needed here.*\n  dandi:000128@"
    ):
        with open_nwb("dandi:000128"):
            pass


def test_streaming_a_missing_blob_is_a_clear_error():
    asset = expand_sources(["dandi:000140"])[0]
    gone = DandiAsset(**{**asset.__dict__, "content_url": asset.content_url + "-gone"})
    with pytest.raises(DandiError, match=r"cannot stream .*-gone \(.*404.*nothing was opened"):
        with open_nwb(gone):
            pass


def test_streaming_a_blob_of_another_size_is_a_clear_error():
    asset = expand_sources(["dandi:000140"])[0]
    wrong = DandiAsset(**{**asset.__dict__, "size": asset.size + 1})
    with pytest.raises(
        DandiError, match=rf"the blob has {asset.size} bytes, the archive lists {asset.size + 1}"
    ):
        with open_nwb(wrong):
            pass


def test_inspect_and_read_session_stream_a_dandi_asset(mc_maze_small):
    spec = "dandi:000140/sub-Jenkins/*.nwb"
    result = _invoke("inspect", spec)
    assert result.exit_code == 0, result.output
    assert spec in result.output and re.search(r"units: 107\b", result.output)
    kwargs = dict(bin_size=0.01, align_to="move_onset_time", window=(-0.25, 0.45))
    remote = read.read_session(spec, **kwargs)
    local = read.read_session(mc_maze_small, **kwargs)
    assert remote.attrs["source"] == spec
    assert remote.spikes.shape == (100, 70, 107)
    np.testing.assert_array_equal(remote.spikes.values, local.spikes.values)


# ---- errors through the CLI (exit code 2, one message, no traceback) --------------------------
def test_cli_unknown_dandiset_version_asset_and_glob(archive, tmp_path):
    _assert_user_error(
        _invoke("download", "000999", "--out", tmp_path), r"no dandiset 000999 on http://127"
    )
    _assert_user_error(
        _invoke("download", "000128", "--version", "9.9.9", "--out", tmp_path),
        rf"has no version 9\.9\.9\. Available: {PUBLISHED}, draft",
    )
    _assert_user_error(
        _invoke("download", "dandi:000128@9", "--out", tmp_path), r"'9' is not a DANDI version"
    )
    bogus = "00000000-0000-0000-0000-000000000000"
    _assert_user_error(
        _invoke(
            "download",
            f"{archive.api}/dandisets/000128/versions/draft/assets/{bogus}/",
            "--out",
            tmp_path,
        ),
        rf"has no asset {bogus}",
    )
    _assert_user_error(
        _invoke("download", "dandi:000128/sub-Nobody/*", "--out", tmp_path),
        rf"no asset of dandiset 000128 version {PUBLISHED} matches 'sub-Nobody/\*'.*{JENKINS}",
    )
    assert not any(tmp_path.iterdir())


def test_cli_unreachable_archive(monkeypatch, tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DANDI_INSTANCE", f"http://127.0.0.1:{port}")
    _assert_user_error(
        _invoke("download", "000128", "--out", tmp_path),
        rf"could not reach the DANDI archive at http://127.0.0.1:{port}.*nothing was downloaded",
    )
    monkeypatch.setenv("DANDI_INSTANCE", "no-such-instance")
    _assert_user_error(
        _invoke("download", "000128", "--out", tmp_path),
        r"DANDI_INSTANCE='no-such-instance' is not a DANDI instance the dandi client knows",
    )


def test_cli_api_failing_after_retries(archive, tmp_path):
    archive.fail("api", "503", times=10)
    _assert_user_error(
        _invoke("download", "000140", "--out", tmp_path),
        r"000140: could not reach the DANDI archive.*503.*nothing was downloaded",
    )
    assert (
        len([r for r in archive.requests if r[1] == "/api/dandisets/000140/"]) == 2
    )  # the client retried


def test_cli_blob_failing_after_retries_leaves_nothing_partial(archive, tmp_path):
    archive.fail("blob", "503", times=20)
    result = _invoke("download", "000140", "--out", tmp_path)
    _assert_user_error(
        result,
        rf"1 of 1 downloads .* failed:\n  000140/{JENKINS}: download failed after "
        rf"retries \(503 .*no incomplete file was left .*nothing partial was left",
    )
    assert len(archive.blob_requests()) == 10  # dandi's own attempts
    assert not (tmp_path / "000140" / "sub-Jenkins").exists() or not any(
        (tmp_path / "000140" / "sub-Jenkins").iterdir()
    )


def test_cli_checksum_mismatch_removes_the_file(archive, tmp_path):
    result = _invoke("download", "000200", "--out", tmp_path)
    _assert_user_error(
        result,
        r"sub-x/sub-x_ecephys.nwb: checksum mismatch \(dandi-etag: downloaded .*the file was removed",
    )
    assert not (tmp_path / "000200" / "sub-x" / "sub-x_ecephys.nwb").exists()


def test_dandi_asset_is_a_plain_value():
    asset = DandiAsset(
        "http://x/api", "000128", "draft", "a/b.nwb", "id", 3, "e-1", "http://x/d", "http://x/b"
    )
    assert asset.name == "b.nwb" and str(asset) == "dandi:000128@draft/a/b.nwb"
    assert {asset: 1}[DandiAsset(*[getattr(asset, f) for f in asset.__dataclass_fields__])] == 1


# ---- fit straight from the archive ------------------------------------------------------------
@pytest.mark.slow  # ~40 s on 2 busy cores, mostly compiling the model
def test_fit_a_dandi_asset_end_to_end(archive, tmp_path):
    tiny = [
        f"--set={k}"
        for k in (
            "model.gen_dim=8",
            "model.ic_enc_dim=4",
            "model.ci_enc_dim=4",
            "model.con_dim=4",
            "model.fac_dim=3",
            "model.ic_dim=4",
            "model.co_dim=1",
            "train.batch_size=16",
            "train.n_samples=2",
        )
    ]
    result = _invoke(
        "fit",
        "dandi:000140/sub-Jenkins/*.nwb",
        "--out",
        tmp_path / "run",
        "--cache-dir",
        tmp_path / "cache",
        "--align-to",
        "move_onset_time",
        "--window",
        -0.25,
        0.45,
        "--bin-size",
        0.01,
        "--max-epochs",
        1,
        "--quiet",
        "--no-plots",
        *tiny,
    )
    assert result.exit_code == 0, result.output
    cached = next((tmp_path / "cache").glob(f"*/000140/draft/{JENKINS}"))
    assert (
        cached.read_bytes() == archive.sources[JENKINS].read_bytes()
    )  # fit wrote a copy, not the cache
    import pynwb

    with pynwb.NWBHDF5IO(
        str(tmp_path / "run" / "sub-Jenkins_ses-small_desc-test_ecephys.lfads.nwb"), "r"
    ) as io:
        assert io.read().processing["lfads"]["rates"].data.shape == (7000, 107)
