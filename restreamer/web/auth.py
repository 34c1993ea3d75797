"""The authentication decision of :mod:`restreamer.core.credentials`, turned into HTTP."""

from __future__ import annotations

from flask import Response

from ..core.credentials import Authenticator

#: The content type of every error answer.
TEXT = "text/plain; charset=utf-8"


def denial(authenticator: Authenticator, headers: dict[str, str] | None = None) -> Response:
    """401 with a challenge when a realm is configured, else 403; empty, but typed as text
    (a refused stream must not look like video to a player)."""
    headers = dict(headers or {}, **{"Content-Type": TEXT})
    if authenticator.realm and authenticator.type in ("basic", "bearer"):
        scheme = "Basic" if authenticator.type == "basic" else "Bearer"
        realm = authenticator.realm.replace("\\", "\\\\").replace('"', '\\"')
        headers["WWW-Authenticate"] = f'{scheme} realm="{realm}", charset="UTF-8"'
        return Response(b"", status=401, headers=headers)
    return Response(b"", status=403, headers=headers)
