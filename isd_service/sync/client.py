"""Pull a version from the service: a full snapshot the first time, deltas afterwards.

Only path-only URLs are used, so the server may be the application or a static mirror of it
(a web server, bucket or CDN serving what `isd mirror` wrote). From the version held to the
one wanted, the client follows a chain of consecutive and skip deltas (chain.py) and checks
every hop: its base is the version before it, its result is the next version's manifest.
Nothing is written until everything received has been checked against the manifest: every
entity's count and sha256, the catalogue's sha256 and the version's sha256.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from isd_service.sync import chain, hashing, local

TIMEOUT = 60
USER_AGENT = "isd-sync/1"
# How long a pull waits in all for answers that say 503 (a new version's downloads are built
# in the background after its publication: minutes for millions of records).
DEFAULT_WAIT = 900.0
RETRY_AFTER_DEFAULT = 10.0
MAX_RETRY_AFTER = 120.0

Progress = Callable[[str], None]


class SyncError(Exception):
    """The pull failed and the local copy was left as it was; the message says why."""


class NotFound(SyncError):
    """The server has no such file (HTTP 404)."""


@dataclass
class Result:
    version: int
    previous: int | None
    mode: str  # "snapshot", "delta" or "up-to-date"
    changes: int
    deltas: int = 0  # delta files followed (a chain of consecutive and skip deltas)


class Server:
    """The service's path-only URLs under ``<url>/api/v1``, from the application or a mirror.

    A 503 (a version's downloads still being built after its publication, or the service
    briefly down) is asked again after its Retry-After, for at most ``wait`` seconds in all.
    """

    def __init__(self, url: str, progress: Progress | None = None, *,
                 wait: float = DEFAULT_WAIT):
        self.base = url.rstrip("/") + "/api/v1"
        self.progress = progress
        self.wait_left = wait

    def _open(self, path: str) -> Any:
        url = self.base + urllib.parse.quote(path)
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        while True:
            try:
                return urllib.request.urlopen(request, timeout=TIMEOUT)
            except urllib.error.HTTPError as exc:
                detail = _problem_detail(exc)
                exc.close()  # its connection, before it is asked again
                delay = retry_after(exc.headers.get("Retry-After"))
                if exc.code == 503 and self.wait_left >= delay:
                    self.wait_left -= delay
                    if self.progress:
                        self.progress(f"{path}: not ready ({detail}); again in {delay:.0f} s")
                    pause(delay)
                    continue
                error = NotFound if exc.code == 404 else SyncError
                waited = " (no more waiting: see --wait)" if exc.code == 503 else ""
                raise error(f"{url}: HTTP {exc.code}: {detail}{waited}") from None
            except (urllib.error.URLError, OSError) as exc:
                raise SyncError(f"{url}: cannot reach the server: {exc}") from None

    def json(self, path: str) -> Any:
        with self._open(path) as response:
            try:
                return json.loads(response.read())
            except (ValueError, OSError) as exc:
                raise SyncError(f"{path}: the answer is not complete JSON: {exc}") from None

    def ndjson(self, path: str) -> Iterator[dict[str, Any]]:
        """Yield the lines of an NDJSON answer; a cut-off answer raises SyncError."""
        with self._open(path) as response:
            count = 0
            try:
                for raw in response:
                    if not raw.endswith(b"\n"):
                        raise SyncError(f"{path}: the download was cut off in the middle "
                                        f"of a line")
                    yield json.loads(raw)
                    count += 1
                    if self.progress and count % 5000 == 0:
                        self.progress(f"{count} lines")
            except (ValueError, OSError, http.client.HTTPException) as exc:
                raise SyncError(f"{path}: the download was cut off or garbled: "
                                f"{exc!r}") from None

    def manifest(self, version: int | None) -> dict[str, Any]:
        return self.json("/versions/latest.json" if version is None
                         else f"/versions/{version}/manifest.json")

    def catalogue(self, manifest: dict[str, Any]) -> list[dict[str, Any]]:
        """The catalogue of a version, checked against its manifest's catalogue_sha256."""
        number = manifest["version"]
        catalogue: list[dict[str, Any]] = self.json(
            f"/versions/{number}/catalogue.json")["entities"]
        if hashing.catalogue_sha256(catalogue) != manifest["catalogue_sha256"]:
            raise SyncError(f"the catalogue of version {number} does not match its "
                            f"manifest's catalogue_sha256")
        return catalogue

    def versions(self) -> list[int]:
        """Every published version's number, oldest first (versions/index.json)."""
        numbers = self.json("/versions/index.json")["versions"]
        if not isinstance(numbers, list) or numbers != sorted(set(numbers)):
            raise SyncError("versions/index.json does not list version numbers in order")
        return numbers


def pause(seconds: float) -> None:
    """Wait before asking again (a function of its own, so that a test can step in)."""
    time.sleep(seconds)


def retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), kept between 1 s
    and MAX_RETRY_AFTER; absent or unreadable: RETRY_AFTER_DEFAULT."""
    if value is None:
        return RETRY_AFTER_DEFAULT
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return RETRY_AFTER_DEFAULT
        if when.tzinfo is None:  # an HTTP date is in GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 1.0), MAX_RETRY_AFTER)


def _problem_detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("detail", exc.reason))
    except (ValueError, OSError, AttributeError):
        return str(exc.reason)


def status(server_url: str, root: Path, *, wait: float = DEFAULT_WAIT) -> dict[str, Any]:
    """Which version the local copy holds, and the latest one the server has."""
    state = local.read_state(root)
    latest = Server(server_url, wait=wait).manifest(None)
    held = state["version"] if state else None
    return {"held": held, "latest": latest["version"],
            "up_to_date": held == latest["version"]}


def pull(server_url: str, root: Path, *, fmt: str | None = None, version: int | None = None,
         progress: Progress | None = None, wait: float = DEFAULT_WAIT) -> Result:
    """Bring the local copy in ``root`` to ``version`` (default: the latest), verified;
    ``wait``: seconds to wait in all for answers that say 503."""
    server = Server(server_url, progress, wait=wait)
    with local.locked(root):
        try:
            return _pull(server, server_url, root, fmt, version, progress)
        except (KeyError, TypeError, AttributeError) as exc:
            raise SyncError(f"an answer from the server is not in the expected shape "
                            f"({exc!r})") from None


def _pull(server: Server, server_url: str, root: Path, fmt: str | None, version: int | None,
          progress: Progress | None) -> Result:
    local.clean(root)  # what an interrupted pull left: the next pull starts cleanly
    state = local.read_state(root)
    fmt = fmt or (state["format"] if state else "csv")
    target = server.manifest(version)
    number = target["version"]
    held = state["version"] if state else None
    if state and held == number and state["format"] == fmt:
        return Result(number, held, "up-to-date", 0)
    catalogue = server.catalogue(target)
    hops = _hops(server, held, number) if state is not None and held is not None else None
    records: local.Records | None = None
    if state is not None and hops is not None:
        try:
            records, changes = _apply_deltas(server, root, state, hops, target, catalogue)
            mode = "delta"
        except NotFound:
            # A mirror written from a later version (isd mirror --from) lacks the deltas
            # from the version held: a full snapshot still gets there.
            if progress:
                progress("no chain of deltas from the version held: taking the snapshot")
    if records is None:
        records, changes = _snapshot(server, number, target)
        mode = "snapshot"
    entities = verify(target, catalogue, records)
    for entity in catalogue:  # the local files list records in key order, as snapshots do
        key_fields: list[str] = entity["key"]
        records[entity["id"]].sort(key=lambda r: hashing.key_text(key_fields, r))
    new_state = {"version": number, "server": server_url, "sha256": target["sha256"],
                 "hash_rule": hash_rule(target),
                 "catalogue_sha256": target["catalogue_sha256"],
                 "go_live_date": target.get("go_live_date"), "entities": entities,
                 "catalogue": catalogue}
    if progress:
        progress(f"writing version {number}")
    local.write_version(root, fmt, new_state, records)
    return Result(number, held, mode, changes, len(hops or []) if mode == "delta" else 0)


def _snapshot(server: Server, number: int,
              target: dict[str, Any]) -> tuple[local.Records, int]:
    lines = server.ndjson(f"/versions/{number}/snapshot.ndjson")
    head = next(lines, None)
    if head is None or head.get("sha256") != target["sha256"]:
        raise SyncError(f"the snapshot of version {number} does not start with its manifest")
    records: local.Records = {eid: [] for eid in target["entities"]}
    count = 0
    for line in lines:
        records.setdefault(line["entity"], []).append(line["record"])
        count += 1
    return records, count


def _hops(server: Server, held: int | None, number: int) -> list[tuple[int, int]] | None:
    """The chain of deltas (version numbers) from ``held`` to ``number``; None when there is
    none (going back, or a version the server does not list): then a full snapshot."""
    if held is None or held > number:
        return None
    if held == number:
        return []  # the same version in another format: rewritten from the copy held
    numbers = server.versions()
    if held not in numbers or number not in numbers:
        return None
    return [(numbers[a], numbers[b])
            for a, b in chain.chain(numbers.index(held), numbers.index(number))]


def _apply_deltas(server: Server, root: Path, state: dict[str, Any],
                  hops: list[tuple[int, int]], target: dict[str, Any],
                  catalogue: list[dict[str, Any]]) -> tuple[local.Records, int]:
    held = state["version"]
    # Check what is on disk before building on it: a damaged copy must not spread.
    try:
        records = local.read_records(root, state)
        verify(state, state["catalogue"], records)
    except (SyncError, OSError, ValueError, KeyError) as exc:
        raise SyncError(f"the local copy of version {held} is damaged ({exc}); remove "
                        f"{root / local.CURRENT} to download a full snapshot") from None
    base, base_catalogue = state, state["catalogue"]
    count = 0
    for old, new in hops:
        last = new == target["version"]
        step = target if last else server.manifest(new)
        step_catalogue = catalogue if last else server.catalogue(step)
        records, changes = _apply_delta(server, old, base, base_catalogue, step,
                                        step_catalogue, records)
        count += changes
        if not last:  # every hop's result verified, not only the last one's
            verify(step, step_catalogue, records)
        base, base_catalogue = step, step_catalogue
    return records, count


def _apply_delta(server: Server, held: int, base: dict[str, Any],
                 base_catalogue: list[dict[str, Any]], target: dict[str, Any],
                 catalogue: list[dict[str, Any]],
                 old: local.Records) -> tuple[local.Records, int]:
    """Apply the delta from version ``held`` (``base``, whose records are ``old``) to
    ``target``."""
    number = target["version"]
    lines = server.ndjson(f"/deltas/{held}-{number}.ndjson")
    head = next(lines, None)
    if head is None or head.get("from_sha256") != base["sha256"]:
        raise SyncError(f"the delta from {held} does not start from the version held")
    if head.get("to_sha256") != target["sha256"]:
        raise SyncError(f"the delta does not end at version {number}'s manifest")
    defs = local.fields_of(catalogue)
    old_defs = local.fields_of(base_catalogue)
    by_key: dict[str, dict[str, dict[str, Any]]] = {}
    for eid, entity in defs.items():
        ids = [f["id"] for f in entity["fields"]]
        # A record an entity keeps across a catalogue change takes the new fields as null.
        by_key[eid] = {hashing.key_text(entity["key"], r): hashing.project(ids, r)
                       for r in old.get(eid, []) if eid in old_defs}
    count = 0
    for change in lines:
        eid = change["entity"]
        if eid not in defs:
            continue  # an entity the new catalogue drops goes with all its records
        key = hashing.key_text(defs[eid]["key"], change["key"])
        if change["op"] == "delete":
            if by_key[eid].pop(key, None) is None:
                raise SyncError(f"the delta deletes {eid} {key!r}, which is not held")
        else:
            by_key[eid][key] = change["record"]
        count += 1
    return {eid: list(rows.values()) for eid, rows in by_key.items()}, count


def verify(manifest: dict[str, Any], catalogue: list[dict[str, Any]],
           records: local.Records) -> dict[str, Any]:
    """Check counts and hashes of every entity and of the version; return the entities."""
    defs = local.fields_of(catalogue)
    if set(defs) != set(manifest["entities"]) or set(records) - set(defs):
        raise SyncError(f"version {manifest['version']}: the entities received are not "
                        f"those of its manifest")
    hashes: dict[str, str] = {}
    entities: dict[str, Any] = {}
    rule = hash_rule(manifest)
    for eid, entity in defs.items():
        ids = [f["id"] for f in entity["fields"]]
        count, digest = hashing.entity_sha256(ids, entity["key"], records.get(eid, []),
                                              rule)
        expected = manifest["entities"][eid]
        if count != expected["records"] or digest != expected["sha256"]:
            raise SyncError(
                f"version {manifest['version']}: entity {eid} does not verify: {count} "
                f"records with sha256 {digest}, the manifest says {expected['records']} "
                f"with {expected['sha256']}")
        hashes[eid] = digest
        entities[eid] = {"records": count, "sha256": digest}
    if hashing.version_sha256(manifest["catalogue_sha256"], hashes) != manifest["sha256"]:
        raise SyncError(f"version {manifest['version']}: the version's sha256 does not verify")
    return entities


def hash_rule(manifest: dict[str, Any]) -> int:
    """The rule a version's hashes follow: a manifest says it unless it is rule 1."""
    rule = manifest.get("hash_rule", 1)
    if rule not in (1, 2):
        raise SyncError(f"version {manifest['version']} uses hash rule {rule}, which this "
                        "isd-sync does not know: upgrade it")
    return int(rule)


@dataclass
class Damage:
    """An entity of the local copy that does not verify, and where (rule 2: which ranges)."""

    entity: str
    detail: str
    ranges: list[str]


def check(server_url: str, root: Path) -> tuple[int, list[Damage]]:
    """Verify the local copy against its own state; for each entity that does not verify
    under rule 2, compare its ranges with the server's to say which ones differ."""
    state = local.read_state(root)
    if state is None:
        raise SyncError(f"{root} holds no local copy")
    try:
        records = local.read_records(root, state)
    except (OSError, ValueError, KeyError) as exc:
        raise SyncError(f"the local copy of version {state['version']} cannot be read "
                        f"({exc}); remove {root / local.CURRENT} and pull again") from None
    defs = local.fields_of(state["catalogue"])
    rule = hash_rule(state)
    damaged: list[Damage] = []
    for eid, entity in defs.items():
        ids = [f["id"] for f in entity["fields"]]
        held = records.get(eid, [])
        count, digest = hashing.entity_sha256(ids, entity["key"], held, rule)
        expected = state["entities"][eid]
        if (count, digest) == (expected["records"], expected["sha256"]):
            continue
        if rule == 1:
            damaged.append(Damage(eid, f"{count} records with sha256 {digest}, version "
                                       f"{state['version']} has {expected['records']} with "
                                       f"{expected['sha256']} (hash rule 1: no ranges to "
                                       "narrow it down)", []))
            continue
        served = Server(server_url).json(f"/versions/{state['version']}/ranges/{eid}.json")
        theirs = {r["range"]: (r["records"], r["sha256"]) for r in served["ranges"]}
        ours = hashing.range_sha256s(ids, entity["key"], held)
        differ = sorted(rng for rng in set(theirs) | set(ours) if theirs.get(rng) != ours.get(rng))
        damaged.append(Damage(eid, f"{len(differ)} of {len(theirs)} key ranges differ from "
                                   f"version {state['version']}", differ))
    return state["version"], damaged


def terminal_progress() -> Progress | None:
    """Progress on stderr when it is a terminal; nothing under cron or in a pipe."""
    if not sys.stderr.isatty():
        return None

    def show(message: str) -> None:
        sys.stderr.write(f"\r{message}\x1b[K")
        sys.stderr.flush()

    return show
