"""``nwb-lfads download``: fetch a dandiset, or the assets matching a glob, from the DANDI archive."""

from __future__ import annotations

import click


@click.command(name="download")
@click.argument("spec", metavar="DANDISET[/PATH_GLOB]")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Destination folder; files go to DIR/<dandiset>/<path in the dandiset>.",
)
@click.option(
    "--version",
    "version",
    default=None,
    metavar="V",
    help="Dandiset version ('draft' or e.g. 0.220113.0400). "
    "Default: the most recent published version, else the draft.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def command(spec: str, out_dir: str, version: str | None, quiet: bool) -> None:
    """Download from the DANDI archive with the dandi client, checksums verified.

    DANDISET is a six-digit id, optionally with 'dandi:', '@VERSION' and a path glob
    ('*' matches any characters, '/' included), or an archive URL. Files already complete
    are skipped and interrupted downloads resume, so rerunning is safe. The archive is the
    one the dandi client is configured for (DANDI_INSTANCE: an instance name such as
    dandi-sandbox, or an archive's URL).

    \b
    Examples:
      nwb-lfads download 000140 --out data/
      nwb-lfads download 'dandi:000128/sub-Jenkins/*.nwb' --out data/
      nwb-lfads download https://dandiarchive.org/dandiset/000129/draft --out data/
    """
    from nwb_lfads.io.dandi import download

    paths = download(spec, out_dir, version=version, progress=not quiet)
    click.echo(f"{len(paths)} file(s) under {out_dir}:")
    for path in paths:
        click.echo(f"  {path}")
