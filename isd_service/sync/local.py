"""The local copy on disk, as CSV files or one SQLite database, switched atomically.

Layout of DIR:

- ``current``: a symbolic link to the folder of the version held (read your data through it);
- ``data-<version>-<token>/``: that folder: ``state.json`` (version, hashes, catalogue) and
  either ``<entity id>.csv`` per entity (header of field ids, ISO dates, empty for no value)
  or ``isd.sqlite3`` (one table per entity, named by its id).

A pull writes a whole new folder next to the old one, fsyncs it, then replaces the ``current``
link in one rename: a reader or an interrupted pull only ever sees a complete version.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FORMATS = ("csv", "sqlite")
CURRENT = "current"
STATE = "state.json"
SQLITE_FILE = "isd.sqlite3"

Records = dict[str, list[dict[str, Any]]]


class Busy(Exception):
    """Another pull holds the folder."""


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the folder's lock: two pulls into one folder would remove each other's work."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another pull is running in {root}") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def fields_of(catalogue: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in catalogue}


def read_state(root: Path) -> dict[str, Any] | None:
    """The state of the version held in ``root``, or None if nothing is held yet."""
    path = root / CURRENT / STATE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def read_records(root: Path, state: dict[str, Any]) -> Records:
    """Every record of the version held, typed by its catalogue (integers back to int)."""
    folder = root / CURRENT
    out: Records = {}
    for entity in state["catalogue"]:
        types = {f["id"]: f["type"] for f in entity["fields"]}
        ids = [f["id"] for f in entity["fields"]]
        if state["format"] == "sqlite":
            rows = list(_sqlite_rows(folder / SQLITE_FILE, entity["id"], ids))
        else:
            with (folder / f"{entity['id']}.csv").open(newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                header = next(reader)
                rows = [dict(zip(header, row, strict=True)) for row in reader]
        out[entity["id"]] = [{fid: _typed(types[fid], r.get(fid)) for fid in ids}
                             for r in rows]
    return out


def _sqlite_rows(path: Path, table: str, ids: list[str]) -> Iterator[dict[str, Any]]:
    conn = sqlite3.connect(path)
    try:
        cols = ", ".join(_quote(i) for i in ids)
        for row in conn.execute(f"SELECT {cols} FROM {_quote(table)}"):
            yield dict(zip(ids, row, strict=True))
    finally:
        conn.close()


def _typed(ftype: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if ftype == "integer":
        return int(value)
    return str(value)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write_version(root: Path, fmt: str, state: dict[str, Any], records: Records) -> Path:
    """Write a complete new folder for ``state`` and switch ``current`` to it atomically."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{secrets.token_hex(6)}"
    tmp.mkdir()
    try:
        if fmt == "sqlite":
            _write_sqlite(tmp / SQLITE_FILE, state["catalogue"], records)
        else:
            for entity in state["catalogue"]:
                _write_csv(tmp / f"{entity['id']}.csv", entity, records.get(entity["id"], []))
        _write_file(tmp / STATE, json.dumps({**state, "format": fmt}, indent=1).encode())
        _fsync_dir(tmp)
        final = root / f"data-{state['version']}-{secrets.token_hex(4)}"
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    link = root / f".current-{secrets.token_hex(4)}"
    os.symlink(final.name, link)
    os.replace(link, root / CURRENT)  # the commit point: one atomic rename
    _fsync_dir(root)
    clean(root, keep=final.name)
    return final


def clean(root: Path, keep: str | None = None) -> None:
    """Remove what an interrupted pull or an older version left behind."""
    if not root.is_dir():
        return
    held = os.readlink(root / CURRENT) if (root / CURRENT).is_symlink() else None
    for child in root.iterdir():
        name = child.name
        if name in (keep, held, CURRENT):
            continue
        if name.startswith((".tmp-", "data-")):
            shutil.rmtree(child, ignore_errors=True)
        elif name.startswith(".current-"):
            child.unlink(missing_ok=True)


def _write_csv(path: Path, entity: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    ids = [f["id"] for f in entity["fields"]]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(ids)
        for record in rows:
            writer.writerow(["" if record.get(i) is None else record[i] for i in ids])
        f.flush()
        os.fsync(f.fileno())


def _write_sqlite(path: Path, catalogue: list[dict[str, Any]], records: Records) -> None:
    conn = sqlite3.connect(path)
    try:
        for entity in catalogue:
            ids = [f["id"] for f in entity["fields"]]
            cols = ", ".join(
                f"{_quote(f['id'])} {'INTEGER' if f['type'] == 'integer' else 'TEXT'}"
                for f in entity["fields"])
            key = ", ".join(_quote(k) for k in entity["key"])
            conn.execute(f"CREATE TABLE {_quote(entity['id'])} ({cols}, PRIMARY KEY ({key}))")
            marks = ", ".join("?" for _ in ids)
            conn.executemany(
                f"INSERT INTO {_quote(entity['id'])} VALUES ({marks})",
                ([r.get(i) for i in ids] for r in records.get(entity["id"], [])))
        conn.commit()
    finally:
        conn.close()
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
