"""`isd downloads build|worker|jobs`: build a version's download files before anyone asks for
them; run a builder of the jobs that publications queue; list those jobs."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from isd_service.adapters import repository
from isd_service.adapters.download_files import FolderUnusable
from isd_service.entrypoints.api.caching import downloads_root
from isd_service.entrypoints.download_builder import Builder
from isd_service.entrypoints.flask_db import new_uow, uow
from isd_service.service_layer import download_builds
from isd_service.service_layer.downloads import Downloads, build_version


def build_after_publication(app: Flask, number: int) -> None:
    """Build a just-published version's downloads in this process when BUILD_DOWNLOADS asks
    for it: by claiming its build job (no builder then builds it too), or, with
    DOWNLOAD_BUILDS "on-request", directly."""
    if not app.config.get("BUILD_DOWNLOADS"):
        return
    if app.config["DOWNLOAD_BUILDS"] == "background":
        for outcome in Builder(app).run_due(only=number):
            if outcome.state != "done":
                app.logger.warning("version %s: its downloads were not built here (%s): %s",
                                   number, outcome.state, outcome.error)
        return
    with app.app_context(), new_uow(app) as unit:
        version = repository.get_version(unit.session, number)
        if version is None:
            return
        try:
            count, size, seconds = build_version(unit.session, downloads_root(), version)
        except FolderUnusable as exc:  # the version is out: its downloads stream meanwhile
            app.logger.warning("version %s: its downloads could not be built (%s); they "
                               "are sent from the database until they can be", number, exc)
            return
    app.logger.info("version %s: %s download files (%s bytes) built in %.1fs",
                    number, count, size, seconds)


@click.group("downloads")
def downloads_group() -> None:
    """The download files of published versions."""


@downloads_group.command("build")
@click.argument("number", required=False, type=click.IntRange(1, 2**31 - 1))
@with_appcontext
def build_command(number: int | None) -> None:
    """Build every download of a version (default: the latest) into the downloads folder.

    Run it after a publication on each machine that has its own downloads folder, so that
    no request has to wait for a large version's files.
    """
    db = uow().session
    version = (repository.get_version(db, number) if number
               else repository.latest_version(db))
    if version is None:
        raise click.ClickException(f"no version {number}" if number else "nothing published")
    try:
        count, size, seconds = build_version(db, downloads_root(), version)
    except FolderUnusable as exc:
        raise click.ClickException(f"the downloads folder cannot be written ({exc})") from None
    folder = Downloads(db, downloads_root()).folder(version)
    click.echo(f"version {version.number}: {count} files, {size} bytes in {folder} "
               f"({seconds:.1f}s)")


@downloads_group.command("worker")
@click.option("--once", is_flag=True, help="build the jobs queued now, then exit")
@click.option("--parent", type=int, hidden=True,
              help="exit when this process is gone (the builder of `isd serve`)")
@with_appcontext
def worker_command(once: bool, parent: int | None) -> None:
    """Build the downloads of new versions as their publications queue them, in the
    foreground until SIGTERM (any number of workers may run: each job is built once).

    The scheduler process runs one too; run this where no scheduler runs.
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    builder = Builder(app, alive=(lambda: os.getppid() == parent) if parent else lambda: True)
    if once:
        for outcome in builder.run_due():
            click.echo(f"version {outcome.version}: {outcome.state}"
                       + (f", {outcome.files} files, {outcome.bytes} bytes in "
                          f"{outcome.seconds:.1f}s" if outcome.state == "done" else "")
                       + (f" ({outcome.error})" if outcome.error else ""))
        return
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _sig, _frame: builder.request_stop())
    builder.run()


@downloads_group.command("jobs")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@with_appcontext
def jobs_command(limit: int) -> None:
    """List the latest background builds, newest version first."""
    for job in download_builds.jobs(uow().session, limit):
        done = (f"  {job['files']} files, {job['bytes']} bytes" if job["state"] == "done"
                else "")
        click.echo(f"{job['version']:>6}  {job['state']:<8} attempts {job['attempts']}  "
                   f"queued {job['queued_at']}"
                   + (f"  by {job['claimed_by']}" if job["claimed_by"] else "") + done
                   + (f"  ({job['error']})" if job["error"] else ""))
