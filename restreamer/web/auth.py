"""The authentication decision of :mod:`restreamer.core.credentials`, turned into HTTP."""

from __future__ import annotations

from flask import Response

from ..core.credentials import Authenticator


def denial(authenticator: Authenticator, headers: dict[str, str] | None = None) -> Response:
    """401 with a challenge when a realm is configured, else 403; empty body."""
    headers = dict(headers or {})
    if authenticator.realm and authenticator.type in ("basic", "bearer"):
        scheme = "Basic" if authenticator.type == "basic" else "Bearer"
        realm = authenticator.realm.replace("\\", "\\\\").replace('"', '\\"')
        headers["WWW-Authenticate"] = f'{scheme} realm="{realm}", charset="UTF-8"'
        return Response(b"", status=401, headers=headers)
    return Response(b"", status=403, headers=headers)
