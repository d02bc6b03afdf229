"""The bearer-token check every admin blueprint runs before its views."""

from __future__ import annotations

from flask import Blueprint, g, request

from isd_service.domain.access import Caller
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer.tokens import authenticate


def protect(bp: Blueprint, role: str | None = None) -> None:
    """Authenticate every request to ``bp`` (401 without a valid token), and need ``role``."""

    @bp.before_request
    def _authenticate() -> None:
        # Set before the role check, so that the request log names who was refused.
        g.caller = authenticate(uow(), request.headers.get("Authorization"))
        if role is not None:
            g.caller.require(role)


def caller() -> Caller:
    """Who sent the current admin request (set by ``protect``)."""
    return g.caller
