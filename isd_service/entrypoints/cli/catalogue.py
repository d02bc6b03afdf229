"""`isd catalogue add-entity|add-field|change-field|set-relations`: catalogue changes, out
with the next version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from isd_service.domain.errors import DomainError
from isd_service.entrypoints.cli import fail, refused
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer import catalogue


@click.group("catalogue")
def catalogue_group() -> None:
    """Add entities and data items to the catalogue."""


def _definition(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"{path}: {exc}")


@catalogue_group.command("add-entity")
@click.argument("definition", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def catalogue_add_entity(definition: str) -> None:
    """Add an entity from a JSON definition file."""
    try:
        entity = catalogue.add_entity(uow(), _definition(definition), actor="cli",
                                      organisation=current_app.config["ADMIN_ORG"])
    except DomainError as exc:
        refused(exc, "the entity was refused")
    click.echo(f"added entity {entity.id}")


@catalogue_group.command("add-field")
@click.argument("entity_id")
@click.argument("definition", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def catalogue_add_field(entity_id: str, definition: str) -> None:
    """Add a data item (a JSON field definition file) to an entity."""
    try:
        field = catalogue.add_field(uow(), entity_id, _definition(definition), actor="cli",
                                    organisation=current_app.config["ADMIN_ORG"])
    except DomainError as exc:
        refused(exc)
    click.echo(f"added field {field.id} to {entity_id}")


@catalogue_group.command("change-field")
@click.argument("entity_id")
@click.argument("field_id")
@click.option("--name", help="the new display name: the column's header in files")
@click.option("--description", help="the new description")
@with_appcontext
def catalogue_change_field(entity_id: str, field_id: str, name: str | None,
                           description: str | None) -> None:
    """Give a data item a new name (its header in files) or description."""
    changes = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
    try:
        field = catalogue.change_field(uow(), entity_id, field_id, changes, actor="cli",
                                       organisation=current_app.config["ADMIN_ORG"])
    except DomainError as exc:
        refused(exc, "the change was refused")
    click.echo(f"{entity_id}.{field.id} is now named {field.name!r}")


@catalogue_group.command("set-relations")
@click.argument("entity_id")
@click.argument("definition", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def catalogue_set_relations(entity_id: str, definition: str) -> None:
    """Declare an entity's relations: a JSON file holding a list of {"fields": [...],
    "reference": {"entity": ID, "fields": [...]}} ([] removes them)."""
    try:
        entity = catalogue.set_relations(uow(), entity_id, _definition(definition), actor="cli",
                                         organisation=current_app.config["ADMIN_ORG"])
    except DomainError as exc:
        refused(exc, "the relations were refused")
    for fk in entity.foreign_keys:
        click.echo(fk.describe(entity_id))
    click.echo(f"{entity_id}: {len(entity.foreign_keys)} relation(s) declared")
