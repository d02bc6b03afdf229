"""The unit of work: one session, and the one frame every change to the service goes through.

Every writer's transaction starts by taking the draft's lock and ends by committing, or by
rolling back on any error; nothing else in the code commits. On PostgreSQL the lock is a row
lock that queues writers; on SQLite the first write starts the write transaction before
anything is read. Either way a writer never works from a stale snapshot and two writers
never interleave.

Work that must only follow a committed change (notifying webhook subscribers, building a new
version's download files) is announced as an event during the transaction and handed to the
unit of work's ``after_commit`` handler once the commit has succeeded; a rolled-back
transaction announces nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from isd_service.adapters.orm import Draft


@dataclass(frozen=True)
class VersionPublished:
    """A version was published (announced after its transaction committed)."""

    number: int
    webhook_notices: bool  # whether the publication queued notices to send


Event = VersionPublished
AfterCommit = Callable[[Event], None]


class UnitOfWork:
    """A session for one request, command or job; ``transaction()`` for every change.

    ``settings`` are the service's settings (config.py) that use cases need, as plain values.
    """

    def __init__(self, session_factory: sessionmaker[Session], *,
                 settings: Mapping[str, Any] | None = None,
                 after_commit: AfterCommit | None = None):
        self._factory = session_factory
        self._session: Session | None = None
        self._after_commit = after_commit
        self._events: list[Event] = []
        self._deferred: list[Callable[[], None]] = []
        self.settings: Mapping[str, Any] = settings or {}

    @property
    def session(self) -> Session:
        """The session (opened on first use), for reads and inside a transaction."""
        if self._session is None:
            self._session = self._factory()
        return self._session

    @contextmanager
    def transaction(self, *, lock: bool = True) -> Iterator[Session]:
        """A writer's transaction: the draft's lock first, then commit, or roll back.

        ``lock=False`` is for writes beside the versioned data (tokens, webhook deliveries),
        which need not queue behind a long load.
        """
        session = self.session
        try:
            # Whatever was read before belongs to another snapshot: start afresh.
            session.rollback()
            if lock:
                session.execute(update(Draft).where(Draft.id == 1).values(
                    revision=Draft.revision + 1, updated_at=datetime.now(UTC)))
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            self._events.clear()
            self._deferred.clear()
            raise
        events, self._events = self._events, []
        deferred, self._deferred = self._deferred, []
        for event in events:
            if self._after_commit is not None:
                self._after_commit(event)
        for work in deferred:
            work()

    def announce(self, event: Event) -> None:
        """Hand ``event`` to the after-commit handler once this transaction commits."""
        self._events.append(event)

    def defer(self, work: Callable[[], None]) -> None:
        """Run ``work`` (a use case's own follow-up, e.g. database upkeep) once this
        transaction commits; a rolled-back transaction runs nothing."""
        self._deferred.append(work)

    def end_read(self) -> None:
        """End a read-only transaction, so that it holds no snapshot (or SQLite lock) open."""
        if self._session is not None:
            self._session.rollback()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
