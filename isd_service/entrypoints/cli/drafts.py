"""`isd load` and `isd draft show|discard`: the draft."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from isd_service.adapters import repository
from isd_service.domain.errors import DomainError
from isd_service.domain.formats import FORMATS, InputFile
from isd_service.domain.staging import MODES, TARGETS
from isd_service.entrypoints.cli import fail, refused
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer import drafts


def input_files(paths: tuple[str, ...], fmt: str) -> list[InputFile]:
    """The files named, a folder standing for every file of the format's suffix (and every
    zip) in it."""
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            suffix = ".json" if fmt == "json" else ".csv"
            members = sorted(p for p in path.iterdir()
                             if p.is_file() and p.suffix.lower() in (suffix, ".zip"))
            if not members:
                fail(f"{path} holds no {suffix} or .zip file")
            files += [InputFile(p.name, path=p) for p in members]  # read as loaded
        elif path.is_file():
            files.append(InputFile(path.name, path=path))
        else:
            fail(f"{path}: no such file or folder")
    return files


@contextmanager
def load_progress() -> Iterator[drafts.Progress | None]:
    """A progress bar of a load on a terminal (validating, then staging, entity by entity);
    nothing when stderr is a file or cron's."""
    if not sys.stderr.isatty():
        yield None
        return
    steps = {"validate": 0, "stage": 1}
    with click.progressbar(length=1000, label="load", file=sys.stderr, show_eta=False,
                           item_show_func=lambda step: step) as bar:
        def show(step: str, done: int, total: int) -> None:
            phase = steps.get(step.split(" ")[0])
            if phase is None or not total:
                return
            bar.update(int(500 * (phase + done / total)) - bar.pos, step)
        yield show


@click.command("load")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="mdd-csv",
              show_default=True)
@click.option("--mode", type=click.Choice(MODES), default="replace", show_default=True)
@click.option("--entity", help="entity id (or MDD stem) when a file's name does not say")
@click.option("--by", "actor", default="cli", show_default=True, help="who is loading")
@click.option("--org", help="organisation recorded with the load [default: ADMIN_ORG]")
@click.option("--target", type=click.Choice(TARGETS), default="open", show_default=True,
              help="frozen: override into the release frozen at its change-request deadline")
@click.argument("paths", nargs=-1, required=True)
@with_appcontext
def load_command(fmt: str, mode: str, entity: str | None, actor: str, org: str | None,
                 target: str, paths: tuple[str, ...]) -> None:
    """Load files (or folders of files) into the draft, all or nothing."""
    files = input_files(paths, fmt)
    started = datetime.now(UTC)
    try:
        with load_progress() as progress:
            record = drafts.load(uow(), files=files, fmt=fmt, mode=mode, entity_id=entity,
                                 actor=actor,
                                 organisation=org or current_app.config["ADMIN_ORG"],
                                 progress=progress, target=target)
    except DomainError as exc:
        refused(exc, limit=current_app.config["MAX_REPORTED_ERRORS"])
    seconds = (datetime.now(UTC) - started).total_seconds()
    for eid, counts in record.entities.items():
        click.echo(f"{eid:<36} " + " ".join(f"{k} {v}" for k, v in counts.items()))
    click.echo(f"load {record.id}: inserted {record.inserted}, updated {record.updated}, "
               f"deleted {record.deleted}, unchanged {record.unchanged} in {seconds:.1f}s")
    release = repository.load_release(uow().session, record.id)
    if release is not None:
        click.echo(f"staged for release {release.id} (version {release.version}, "
                   f"{release.state})")


@click.group("draft")
def draft_group() -> None:
    """Inspect or discard the draft."""


@draft_group.command("show")
@with_appcontext
def draft_show() -> None:
    """Print the staged changes per entity as JSON."""
    click.echo(json.dumps(repository.draft_summary(uow().session), indent=2, sort_keys=True))


@draft_group.command("discard")
@with_appcontext
def draft_discard() -> None:
    """Drop every staged record change."""
    n = drafts.discard(uow(), actor="cli", organisation=current_app.config["ADMIN_ORG"])
    click.echo(f"discarded {n} staged change(s)")
