"""URLs as they may be shown: in logs, API answers and config errors.

A URL from the config may carry a password (``user:pass@``), a token in its
query, or a forked command's arguments (``fork:///bin/cmd?arg1+arg2``).  What
is shown is ``scheme://host:port/path`` only.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """``url`` without userinfo, query and fragment (for ``fork://``: the command path).

    Works on any text, valid URL or not: a password holding ``/``, ``?`` or
    ``#`` makes a URL invalid, and is then cut at the last ``@``, so a
    malformed URL can lose part of its path but never shows its secret.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed authority
    except ValueError:
        return _cut(url)
    authority = url.partition("://")[2].split("/", 1)[0]
    if "@" in parts.path or ("@" in authority and "@" not in parts.netloc) or (
            "@" in parts.netloc and "@" in parts.query + parts.fragment):
        # A password holding "/", "?", "#" or "@" moved part of the authority elsewhere.
        return _cut(url)
    host = parts.netloc.rpartition("@")[2]
    if not parts.scheme:
        return f"//{host}{parts.path}" if parts.netloc else parts.path
    if parts.netloc or url[len(parts.scheme) + 1:].startswith("//"):
        return f"{parts.scheme}://{host}{parts.path}"
    return f"{parts.scheme}:{parts.path}"


def _cut(url: str) -> str:
    """Everything after the last ``@`` of the authority on, then no query or fragment."""
    head, sep, tail = url.partition("://")
    if sep:
        return head + sep + _no_query(tail.rpartition("@")[2])
    scheme, colon, rest = url.partition(":")
    return scheme + colon + _no_query(rest.rpartition("@")[2]) if colon else _no_query(url.rpartition("@")[2])


def _no_query(text: str) -> str:
    return text.split("?", 1)[0].split("#", 1)[0]


#: A URL's userinfo (up to its last "@" before the path: passwords may hold
#: "@", ":" or spaces) and its query, wherever they appear in a text.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\n]*@")
_QUERY = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^?#\s]*)\?[^#\s]*")


def redact_text(text: str) -> str:
    """``text`` with the userinfo and query of every URL in it replaced by
    ``***``: the log's backstop, for URLs quoted where nobody redacted them
    (a library's error message, say)."""
    if "://" not in text:
        return text
    return _QUERY.sub(r"\1?***", _USERINFO.sub(r"\1***@", text))
