"""Synthetic MDD versions for benchmarks: `isd bench generate`.

Folders of Elexon MDD CSV files (``<out>/<version>/<Stem>_<version>.csv``) for the entities of
a catalogue, with the entities' shares of a real MDD version (line loss factor classes
dominate), and a share of changes between versions (updates, inserts, deletes) like a real
release's. Deterministic: the same arguments always write the same bytes.

A record is never held in memory: its values are drawn from a generator seeded by (seed,
entity, key number, revision), so a million-record store needs only one revision counter
per record.
"""

from __future__ import annotations

import random
import string
from array import array
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click
from flask.cli import with_appcontext

from isd_service.adapters.repository import working_catalogue
from isd_service.domain.catalogue import Catalogue, EntityDef, FieldDef
from isd_service.domain.formats import mdd_csv
from isd_service.entrypoints.flask_db import session

# Records per entity in MDD version 370 (of 79,635): the shape of the synthetic versions.
REAL_SHARES = {
    "Line_Loss_Factor_Class": 45977, "Clock_Interval": 13627,
    "Valid_MTC_SSC_Combination": 8043, "MTC_in_PES_Area": 5080,
    "Market_Participant_Role": 1522, "Measurement_Requirement": 1512,
    "Time_Pattern_Regime": 1286, "Standard_Settlement_Configuration": 965,
    "Market_Participant": 945, "Meter_Timeswitch_Class": 592, "Market_Role": 36,
    "MTC_Meter_Type": 20, "GSP_Group": 14, "MTC_Payment_Type": 8, "Profile_Class": 8,
}
ALPHABET = string.ascii_uppercase + string.digits
FIRST_DAY = date(1996, 4, 1)
DATES_PER_KEY = 8  # distinct effective-from dates one key may have


def key_domain(fdef: FieldDef) -> int:
    """How many distinct values a key field can take here."""
    if fdef.type == "enum":
        return len(fdef.values or [])
    if fdef.type == "date":
        return DATES_PER_KEY
    if fdef.type == "time":
        return 48  # half-hours
    if fdef.type == "integer":
        return 1000
    return len(ALPHABET) ** min(fdef.max_length or 6, 6)


def key_value(fdef: FieldDef, digit: int) -> Any:
    if fdef.type == "enum":
        return (fdef.values or [])[digit]
    if fdef.type == "date":
        return (FIRST_DAY + timedelta(days=365 * digit + 31 * (digit % 3))).isoformat()
    if fdef.type == "time":
        return f"{digit // 2:02d}:{30 * (digit % 2):02d}"
    if fdef.type == "integer":
        return digit
    width = min(fdef.max_length or 6, 6)
    chars = []
    for _ in range(width):
        digit, rest = divmod(digit, len(ALPHABET))
        chars.append(ALPHABET[rest])
    return "".join(reversed(chars))


def other_value(fdef: FieldDef, rng: random.Random, start: str | None) -> Any:
    if fdef.type == "enum":
        return rng.choice(fdef.values or [""])
    if fdef.type == "date":
        day = date.fromisoformat(start) if start else FIRST_DAY
        return (day + timedelta(days=rng.randrange(30, 6000))).isoformat()
    if fdef.type == "time":
        return f"{rng.randrange(24):02d}:{rng.choice((0, 30)):02d}"
    if fdef.type == "integer":
        return rng.randrange(1000)
    limit = fdef.max_length or 40
    size = rng.randrange(1, min(limit, 30) + 1)
    return "".join(rng.choices(ALPHABET + " ", k=size)).strip() or "X"


class EntityState:
    """The records of one entity: key number i is live with revision revs[i] (-1: gone)."""

    def __init__(self, entity: EntityDef, count: int, seed: int):
        self.entity = entity
        self.key_fields = [f for f in entity.fields if f.id in entity.key]
        self.capacity = 1
        for f in self.key_fields:
            self.capacity *= max(key_domain(f), 1)
        self.seed = seed
        self.revs = array("i", [0] * min(count, self.capacity))

    def key_of(self, number: int) -> dict[str, Any]:
        out = {}
        # The last key field varies fastest, as effective-from dates do in the real files.
        for f in reversed(self.key_fields):
            number, digit = divmod(number, key_domain(f))
            out[f.id] = key_value(f, digit)
        return out

    def record(self, number: int) -> dict[str, Any]:
        record = self.key_of(number)
        rng = random.Random(f"{self.seed}:{self.entity.id}:{number}:{self.revs[number]}")
        start = record.get(self.entity.effective_from) if self.entity.effective_from else None
        for f in self.entity.fields:
            if f.id in record:
                continue
            if f.id == self.entity.effective_to and rng.random() < 0.8:
                record[f.id] = None  # most records are open-ended
            elif not f.required and rng.random() < 0.3:
                record[f.id] = None
            else:
                record[f.id] = other_value(f, rng, start)
        return record

    def records(self) -> Iterator[dict[str, Any]]:
        for number, rev in enumerate(self.revs):
            if rev >= 0:
                yield self.record(number)

    def change(self, rng: random.Random, count: int) -> None:
        """Make ``count`` changes: 70% updates, 15% deletes, 15% inserts."""
        live = len(self.revs)
        for _ in range(count):
            roll = rng.random()
            if roll < 0.15 and len(self.revs) < self.capacity:
                self.revs.append(0)
            elif live:
                number = rng.randrange(live)
                if self.revs[number] >= 0:
                    self.revs[number] = -1 if roll < 0.30 else self.revs[number] + 1


def plan(catalogue: Catalogue, records: int, only: list[str] | None = None) -> dict[str, int]:
    """Records per entity: the real shares scaled to ``records`` (at least one each); or,
    for the entities ``only`` names, ``records`` shared equally between them."""
    if only:
        return {eid: max(1, records // len(only)) for eid in only}
    entities = [e for e in catalogue.entities.values() if e.source in REAL_SHARES]
    total = sum(REAL_SHARES[e.source] for e in entities if e.source)
    return {e.id: max(1, round(records * REAL_SHARES[e.source] / total))
            for e in entities if e.source}


def generate(catalogue: Catalogue, *, records: int, versions: int, out: Path, seed: int,
             change_share: float, first: int, only: list[str] | None = None
             ) -> list[tuple[int, int]]:
    """Write ``versions`` folders; return (version, record count) for each."""
    rng = random.Random(seed)
    states = [EntityState(catalogue.entities[eid], count, seed)
              for eid, count in plan(catalogue, records, only).items()]
    written = []
    for number in range(first, first + versions):
        if number > first:
            for state in states:
                share = len(state.revs) * change_share
                state.change(rng, int(share) + (rng.random() < share % 1))
        folder = out / str(number)
        folder.mkdir(parents=True, exist_ok=True)
        total = 0
        for state in states:
            path = folder / f"{state.entity.source}_{number}.csv"
            with path.open("w", encoding="utf-8", newline="") as f:
                batch: list[str] = []
                for chunk in mdd_csv.write(state.entity, state.records()):
                    batch.append(chunk)
                    if len(batch) >= 2000:
                        f.write("".join(batch))
                        batch = []
                f.write("".join(batch))
            total += sum(1 for r in state.revs if r >= 0)
        written.append((number, total))
    return written


@click.group("bench")
def bench_group() -> None:
    """Benchmark helpers."""


@bench_group.command("generate")
@click.option("--records", type=click.IntRange(1, 100_000_000), required=True,
              help="records in the first version")
@click.option("--versions", type=click.IntRange(1, 1000), default=2, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--changes", "change_share", type=click.FloatRange(0, 1), default=0.01,
              show_default=True, help="share of each entity's records changed per version")
@click.option("--first", type=click.IntRange(1, 2**31 - 1), default=1, show_default=True,
              help="number of the first version folder")
@click.option("--entity", "only", multiple=True,
              help="generate only this entity (repeatable), with all the records")
@with_appcontext
def bench_generate(records: int, versions: int, out: Path, seed: int, change_share: float,
                   first: int, only: tuple[str, ...]) -> None:
    """Write synthetic MDD CSV version folders shaped like the real ones."""
    catalogue = working_catalogue(session())
    if not catalogue.entities:
        raise click.ClickException("the catalogue is empty: run `isd db upgrade` first")
    unknown = [eid for eid in only if eid not in catalogue]
    if unknown:
        raise click.ClickException(f"no entity {', '.join(unknown)} in the catalogue")
    for number, total in generate(catalogue, records=records, versions=versions, out=out,
                                  seed=seed, change_share=change_share, first=first,
                                  only=list(only) or None):
        click.echo(f"{out / str(number)}: {total} records")
