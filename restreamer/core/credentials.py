"""Per-resource access control: HTTP basic and bearer authentication.

Credentials come from the config's ``userlist``; a resource's
``authentication`` names which users may access it.  Every comparison is in
constant time, and every allowed credential is compared, so neither timing
nor the position of a user in the list tells anything.  Credentials are never
logged.
"""

from __future__ import annotations

import base64
import hmac

from ..config import Authentication


class Authenticator:
    """Decides whether an ``Authorization`` header grants access to one resource."""

    def __init__(self, auth: Authentication, userlist: dict[str, str]):
        self.type = auth.type
        self.realm = auth.realm
        self._expected = [
            _credential(self.type, name, userlist[name]) for name in auth.names if name in userlist
        ]

    @property
    def required(self) -> bool:
        # No type, or an empty one (the original's pass authenticator): nobody is asked.
        return bool(self.type)

    def allows(self, header: str | None) -> bool:
        """True if ``header`` carries the credentials of an allowed user."""
        if not self.required:
            return True
        if self.type not in ("basic", "bearer") or not header:
            return False  # an unknown type denies everything, as in the original
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != self.type:
            return False
        # WSGI decodes header bytes as latin-1 (PEP 3333): encoding back gives the
        # bytes the client sent, so a UTF-8 token compares equal to its password.
        given = value.strip().encode("latin-1", "replace")
        if not given:
            return False  # "Bearer" alone must not match a user whose password is empty
        granted = False
        for expected in self._expected:
            granted |= hmac.compare_digest(given, expected)
        return granted


def _credential(kind: str | None, user: str, password: str) -> bytes:
    """What the header value must be: base64(user:password) or the token itself."""
    if kind == "basic":
        return base64.b64encode(f"{user}:{password}".encode("utf-8"))
    return password.encode("utf-8")


def authorization_header(auth: Authentication, userlist: dict[str, str]) -> dict[str, bytes]:
    """The ``Authorization`` header to send as ``auth.user`` (for notifications).

    Bytes, so a token goes out as UTF-8, as :meth:`Authenticator.allows`
    expects it; a str would be sent as latin-1, or fail beyond it.
    """
    name = auth.names[0] if auth.names else None
    if auth.type not in ("basic", "bearer") or name is None or name not in userlist:
        return {}
    scheme = b"Basic " if auth.type == "basic" else b"Bearer "
    return {"Authorization": scheme + _credential(auth.type, name, userlist[name])}
