"""Page cursors: an opaque text that says where the next page starts (pure).

A cursor is the URL-safe base64 (no padding) of a JSON value: a record key (text) or an id.
Anything this service did not hand out is refused with ValueError.
"""

from __future__ import annotations

import base64
import json

NOT_OURS = "not a cursor from a previous page"


def encode(value: str | int) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode("utf-8")).decode().rstrip("=")


def decode_key(cursor: str) -> str:
    """The record key a page continues after."""
    value = _decode(cursor)
    # PostgreSQL text cannot hold NUL; no key of ours does.
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ValueError(NOT_OURS)
    return value


def decode_id(cursor: str) -> int:
    """The id a page continues below."""
    value = _decode(cursor)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2**63 - 1:
        raise ValueError(NOT_OURS)
    return value


def _decode(cursor: str) -> object:
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_",
                               validate=True)
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeError):
        raise ValueError(NOT_OURS) from None
