"""The ``authentication`` section: who may access a resource, or as whom a
notification logs in; and how it is checked against the ``userlist``."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import nearest
from .keys import Reader, Section, Strings, Text, key, listed

AUTH_TYPES = ("basic", "bearer")


@dataclass(frozen=True, kw_only=True)
class Authentication(Section):
    """Who may access a resource (``users``), or as whom a notification logs in (``user``)."""

    type: str | None = key(Text(), None, "`basic` or `bearer`; empty: nobody is asked (as in the "
                                         "original); missing: the same, with a warning; another "
                                         "value denies everyone")
    realm: str = key(Text(), "", "named in the challenge of a 401; without one a refusal is a 403")
    user: str | None = key(Text(), None, "a user of `userlist`, allowed in; a notification logs in "
                                         "as it (empty: none)")
    users: tuple[str, ...] = key(Strings("a user name"), (), "users of `userlist` allowed in")

    @property
    def names(self) -> tuple[str, ...]:
        """The users named, ``user`` first; empty names mean nobody, as in the original."""
        named = ((self.user,) if self.user else ()) + self.users
        return tuple(dict.fromkeys(name for name in named if name))


def check_users(reader: Reader, auth: Authentication, path: str, userlist: dict[str, str],
                 guards: bool) -> None:
    """``guards``: the authentication of a resource (else: as whom a notification logs in)."""
    named = [(f"{path}.user", auth.user)] + [(f"{path}.users[{i}]", u) for i, u in enumerate(auth.users)]
    for where, name in named:
        if name and name not in userlist:
            reader.report(reader.fail(where, f"user {name!r} is not in userlist{nearest(name, userlist)}"))
    if auth.type == "":
        # The original's pass authenticator: its documented example carries
        # this placeholder stanza, so it is no authentication, not a denial.
        if guards and auth.names:
            raise reader.fail(f"{path}.type", "is empty, which lets everyone in, yet users are listed: "
                                              "set type to basic or bearer")
        reader.note(path, "type is empty: no authentication (everyone gets in, as in the original)"
                    if guards else "type is empty: no credentials are sent")
    elif auth.type is None and auth != Authentication():
        if guards:
            reader.warn(path, "has no type, so the resource is public (as in the original); "
                              "set type to basic or bearer")
        else:
            reader.warn(path, "has no type, so no credentials are sent; set type to basic or bearer")
    elif auth.type is not None and auth.type not in AUTH_TYPES:
        # The original denies everything for an unknown type; keep that, but say so.
        effect = "all access to this resource is denied" if guards else "no credentials are sent"
        reader.warn(f"{path}.type", f"unknown authentication type {auth.type!r} (expected one of "
                                    f"{listed(AUTH_TYPES)}){nearest(auth.type, AUTH_TYPES)}; {effect}")
