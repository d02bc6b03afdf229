"""Four-eyes publication (pure): who may approve a publication request, and when it is done.

A token names its holder (a person or team); a token without a name stands for itself. A
request is approved by publishers whose holder is neither the one who asked nor one whose
loads are in the set being published; the N-th approval (ISD_PUBLICATION_APPROVALS) publishes.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from isd_service.domain.access import Forbidden
from isd_service.domain.errors import Conflict


class RequestState(StrEnum):
    """A publication request's state; the values are those stored and shown."""

    AWAITING = "awaiting-approval"
    PUBLISHED = "published"
    REJECTED = "rejected"
    # A load (or a discard, or the release's change) altered the set after the request.
    VOID = "void"


APPROVE = "approve"
REJECT = "reject"


class SelfApproval(Forbidden):
    """A holder may not approve (or reject) their own request or their own loads: 403."""

    slug = "self-approval"


class RequestClosed(Conflict):
    """The request is no longer awaiting approval: 409."""

    slug = "request-closed"


def holder(name: str | None, actor: str) -> str:
    """Who holds a token: its name, or (unnamed) the token itself, e.g. ``token:7``."""
    return name if name else actor


def check_decider(decider: str, *, requester: str, load_holders: Iterable[str],
                  decided: Iterable[str], request_id: int) -> None:
    """Refuse a decision by the requester, by a holder of a load in the set, or twice."""
    if decider == requester:
        raise SelfApproval(f"{decider} asked for publication request {request_id}: another "
                           "publisher must approve or reject it (four eyes)")
    if decider in set(load_holders):
        raise SelfApproval(f"{decider} loaded changes that publication request {request_id} "
                           "would publish: a publisher who loaded none of them must decide")
    if decider in set(decided):
        raise RequestClosed(f"{decider} has already approved publication request "
                            f"{request_id}: another publisher must approve it")


def is_approved(approvals: int, needed: int) -> bool:
    return approvals >= needed
