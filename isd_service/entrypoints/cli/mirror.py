"""`isd mirror DIR|s3://BUCKET[/PREFIX] [--from N]`: the static tree, for a web server or CDN."""

from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import with_appcontext

from isd_service.adapters.mirror_targets import TargetError, target_for
from isd_service.entrypoints.api.caching import downloads_root
from isd_service.entrypoints.cli import fail
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer.mirror import write_mirror


@click.command("mirror")
@click.argument("where")
@click.option("--from", "since", type=click.IntRange(1, 2**31 - 1), default=None,
              help="mirror versions from this one on (default: all)")
@with_appcontext
def mirror_command(where: str, since: int | None) -> None:
    """Write every published version's downloads under WHERE at their path-only URLs.

    WHERE is a folder (DIR/api/v1/...) or an s3://bucket[/prefix] URL. Each file is written
    whole (a temporary name, then a rename; one PUT in a bucket); a file already there with
    the same hash is left alone; versions/latest.json is written last. The deltas of every
    consecutive pair of versions are written, and skip deltas so that any M -> N is a chain
    of about 2 log2(N - M) files.
    """
    started = time.perf_counter()
    try:
        target = target_for(where)
        report = write_mirror(uow().session, downloads_root(), target, since=since,
                              moving_max_age=current_app.config["MOVING_MAX_AGE"],
                              progress=None)
    except (TargetError, LookupError, OSError) as exc:
        fail(f"mirror to {where}: {exc.args[0] if isinstance(exc, LookupError) else exc}")
    versions = report.versions
    click.echo(f"versions {versions[0]} to {versions[-1]} ({len(versions)}), "
               f"{report.deltas} deltas: {report.written} files written "
               f"({report.bytes_written} bytes), {report.kept} already there, to {target} "
               f"in {time.perf_counter() - started:.1f}s")
