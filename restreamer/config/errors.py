"""How a configuration's problems are told: one line each, with what was
probably meant."""

from __future__ import annotations

import difflib
from typing import Any


class ConfigError(Exception):
    """A configuration that cannot be used.

    ``file``, ``path`` (the key path, such as ``resources[2].remote``; empty
    for the document as a whole) and ``problem`` are kept apart; ``str()`` is
    the one line ``FILE: key.path: problem`` for the operator.
    """

    def __init__(self, file: str, path: str, problem: str, *, line: int | None = None,
                 column: int | None = None):
        super().__init__(file, path, problem)
        self.file, self.path, self.problem = file, path, problem
        self.line, self.column = line, column

    def __str__(self) -> str:
        where = self.path
        if not where and self.line is not None:
            where = f"line {self.line}" + (f" column {self.column}" if self.column is not None else "")
        return f"{self.file}: {where}: {self.problem}" if where else f"{self.file}: {self.problem}"


class ConfigErrors(ConfigError):
    """Every problem of a document, in file order: one line each.

    It is the first problem (``file``, ``path``, ``problem``), with the others
    in ``errors``; ``warnings`` are those found on the way, which often say
    why (a misspelt key that left a required one missing).
    """

    def __init__(self, errors: list[ConfigError], warnings: list[str]):
        first = errors[0]
        super().__init__(first.file, first.path, first.problem, line=first.line, column=first.column)
        self.errors, self.warnings = tuple(errors), tuple(warnings)

    def __str__(self) -> str:
        return "\n".join(ConfigError.__str__(e) for e in self.errors)


class Reported(Exception):
    """A section could not be read; its problems are in :attr:`Reader.errors` already."""


#: Keys people write for another one, which spelling alone would not suggest.
SLIPS = {"url": "remote", "urls": "remotes", "source": "remote", "upstream": "remote",
         "path": "serve", "port": "listen", "bind": "listen", "address": "listen",
         "interface": "clientinterface", "password": "userlist", "users": "userlist"}


def nearest(value: Any, choices: Any, slips: dict[str, str] | None = None) -> str:
    """``"; did you mean 'x'?"`` for the choice ``value`` was probably meant to
    be (a known slip, or the closest spelling), or ``""``."""
    shown = [str(c) for c in choices]
    meant = (slips or {}).get(str(value).lower())
    if meant not in shown:
        close = difflib.get_close_matches(str(value).lower(), shown, n=1, cutoff=0.6)
        meant = close[0] if close else None
    return f"; did you mean {meant!r}?" if meant else ""
