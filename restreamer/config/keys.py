"""How a config key is declared, read and checked.

A key is declared once, as a dataclass field of the section it belongs to::

    timeout: float = key(Seconds(), 0, "seconds to connect to an upstream")

The declaration carries the value's kind (its type and bounds), its default
and its doc.  :class:`Reader` reads a section from it: the keys it knows
(unknown ones are warned about with the nearest valid key), what each value
must be, and what a missing one becomes (:mod:`.reference` renders the
declarations as the README's table).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import SLIPS, ConfigError, Reported, nearest

#: The default of a key that must be given.
REQUIRED: Any = dataclasses.MISSING


class HugeNumber:
    """An integer in the document too long to be a number (Python refuses to convert it)."""

    def __init__(self, digits: int):
        self.digits = digits


class Mapping(dict):
    """A mapping from a document, with the keys it repeated: ``(key, line, first line)``."""

    duplicates: tuple[tuple[Any, int | None, int | None], ...] = ()


@dataclass(frozen=True)
class Key:
    """A key's declaration, kept in its dataclass field's metadata."""

    kind: "Kind"
    doc: str
    names: tuple[str, ...]  # the keys in the file that set it, usually just its field name
    new: bool  # not a key of the original


def key(kind: "Kind", default: Any = REQUIRED, doc: str = "", *, names: tuple[str, ...] = (),
        new: bool = False) -> Any:
    """Declare a config key as a dataclass field (sections are ``kw_only`` dataclasses)."""
    declared = {"key": Key(kind, doc, names, new)}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=declared)
    return field(default=default, metadata=declared)


@dataclass(frozen=True)
class Declared:
    name: str  # the field's
    key: Key
    default: Any

    @property
    def names(self) -> tuple[str, ...]:
        return self.key.names or (self.name,)


def declared(section: type) -> list[Declared]:
    """The keys ``section`` (a dataclass) declares, in order."""
    result = []
    for f in dataclasses.fields(section):
        if "key" in f.metadata:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            result.append(Declared(f.name, f.metadata["key"], default))
    return result


class Section:
    """A dataclass read from one mapping of the document; ``check`` sees it whole."""

    def check(self, reader: "Reader", path: str) -> None:
        """Problems that involve more than one key (raise ``reader.fail``), or warnings."""


class Reader:
    """Reads sections from plain data, knowing each value's key path; collects warnings."""

    def __init__(self, source: str):
        self.source = source
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.errors: list[ConfigError] = []

    def report(self, error: ConfigError) -> None:
        """Note a problem and read on, so that one run tells them all."""
        self.errors.append(error)

    def attempt(self, read: Callable[[], Any]) -> tuple[bool, Any]:
        """``(True, read())``, or ``(False, None)`` with its problem reported."""
        try:
            return True, read()
        except ConfigError as e:
            self.report(e)
        except Reported:
            pass
        return False, None

    def fail(self, path: str, problem: str, line: int | None = None) -> ConfigError:
        return ConfigError(self.source, path, problem, line=line)

    def warn(self, path: str, problem: str) -> None:
        self.warnings.append(self._line(path, problem))

    def note(self, path: str, text: str) -> None:
        """Something the operator should know that is not wrong (logged at info level)."""
        self.notes.append(self._line(path, text))

    def _line(self, path: str, text: str) -> str:
        return f"{self.source}: {path}: {text}" if path else f"{self.source}: {text}"

    def mapping(self, value: Any, path: str, known: tuple[str, ...] | None,
                fold_case: bool = True) -> dict[str, Any]:
        """The entries of ``value`` whose keys are ``known`` (None: any), warning about the others.

        Keys match case-insensitively, as Go's encoding/json matches the
        original's struct fields (``"Listen"`` works); ``fold_case=False``
        is for keys that are data, such as user names.  A key given twice
        (also in another case) is refused: the original silently took the
        last one.
        """
        if not isinstance(value, dict):
            raise self.fail(path or "top level", f"expected a mapping of keys, got {kind_of(value)}")
        for name, line, first in getattr(value, "duplicates", ()):
            at = f" at line {line} (first at line {first})" if line else ""
            raise self.fail(join(path, str(name)), f"key given twice{at}", line)
        result: dict[str, Any] = {}
        spelt: dict[str, str] = {}
        for item_key, item in value.items():
            if item_key == "":  # "" keys are comments, as in the original
                continue
            if not isinstance(item_key, str):
                raise self.fail(join(path, str(item_key)), "keys must be strings")
            name = item_key.lower() if fold_case else item_key
            if known is not None and name not in known:
                self.warn(join(path, item_key), f"unknown key ignored{nearest(name, known, SLIPS)}")
                continue
            if name in spelt:
                raise self.fail(join(path, item_key), f"key given twice (also as {spelt[name]!r})")
            spelt[name] = item_key
            result[name] = item
        return result

    def section(self, cls: type, value: Any, path: str, **extra: Any) -> Any:
        """Read the section ``cls`` from the mapping ``value``."""
        keys = declared(cls)
        entries = self.mapping(value, path, tuple(n for k in keys for n in k.names))
        return self.build(cls, entries, path, keys, **extra)

    def build(self, cls: type, entries: dict[str, Any], path: str, keys: list[Declared] | None = None,
              **extra: Any) -> Any:
        """The section ``cls`` from already matched ``entries``; its keys are
        read in file order, and every problem is reported (:class:`Reported`
        if there was one)."""
        keys = keys if keys is not None else declared(cls)
        position = {name: i for i, name in enumerate(entries)}
        keys = sorted(keys, key=lambda k: min(position.get(n, len(position)) for n in k.names))
        values = dict(extra)
        before = len(self.errors)
        for k in keys:
            if all(entries.get(n) is None for n in k.names):  # null is "not given", as in Go
                if k.default is REQUIRED:
                    self.report(k.key.kind.missing(self, join(path, k.names[0])))
                continue
            ok, value = self.attempt(lambda k=k: k.key.kind.take(self, entries, k.names, path))
            if ok:
                values[k.name] = value
        if len(self.errors) == before:
            result = cls(**values)
            self.attempt(lambda: result.check(self, path))
        if len(self.errors) > before:
            raise Reported()
        return result


# ---------------------------------------------------------------------------
# kinds of value


class Kind:
    """What a value must be; ``read`` returns it checked (and converted)."""

    def read(self, reader: Reader, value: Any, path: str) -> Any:
        raise NotImplementedError

    def take(self, reader: Reader, entries: dict[str, Any], names: tuple[str, ...], path: str) -> Any:
        """The value of a key set by ``names`` (present in ``entries``)."""
        return self.read(reader, entries[names[0]], join(path, names[0]))

    def missing(self, reader: Reader, path: str) -> ConfigError:
        return reader.fail(path, "is required")


def _number(reader: Reader, value: Any, path: str, what: str, accept: Callable[[Any], bool],
            minimum: float) -> Any:
    if isinstance(value, HugeNumber):
        raise reader.fail(path, f"number too large ({value.digits} digits)")
    if isinstance(value, bool) or not accept(value):
        raise reader.fail(path, f"expected {what}, got {kind_of(value)}")
    if value < minimum or value != value or value == float("inf"):
        raise reader.fail(path, f"must be a finite number >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class Seconds(Kind):
    def read(self, reader: Reader, value: Any, path: str) -> float:
        return _number(reader, value, path, "a number of seconds", lambda v: isinstance(v, (int, float)), 0)


@dataclass(frozen=True)
class Count(Kind):
    minimum: int = 0

    def read(self, reader: Reader, value: Any, path: str) -> int:
        return _number(reader, value, path, "a whole number", lambda v: isinstance(v, int), self.minimum)


@dataclass(frozen=True)
class Flag(Kind):
    def read(self, reader: Reader, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise reader.fail(path, f"expected true or false, got {kind_of(value)}")
        return value


@dataclass(frozen=True)
class Text(Kind):
    """A string; ``problem(value)`` says what is wrong with it, or None;
    ``hint(value)`` what a value of another type was probably meant to be."""

    problem: Callable[[str], str | None] | None = None
    hint: Callable[[Any], str] | None = None

    def read(self, reader: Reader, value: Any, path: str) -> str:
        if not isinstance(value, str):
            hint = self.hint(value) if self.hint else ""
            raise reader.fail(path, f"expected a string, got {kind_of(value)}{hint}")
        problem = self.problem(value) if self.problem else None
        if problem:
            raise reader.fail(path, problem)
        return value


@dataclass(frozen=True)
class Choice(Kind):
    choices: tuple

    def read(self, reader: Reader, value: Any, path: str) -> Any:
        if isinstance(value, bool) or isinstance(value, HugeNumber) or value not in self.choices:
            shown = f"a number of {value.digits} digits" if isinstance(value, HugeNumber) else repr(value)
            hint = nearest(value, self.choices) if isinstance(value, str) else ""
            raise reader.fail(path, f"must be one of {listed(self.choices)}, got {shown}{hint}")
        return value

    def missing(self, reader: Reader, path: str) -> ConfigError:
        return reader.fail(path, f"is required (one of {listed(self.choices)})")


@dataclass(frozen=True)
class Strings(Kind):
    """A list of strings (``what`` each one is, for messages)."""

    what: str

    def read(self, reader: Reader, value: Any, path: str) -> tuple[str, ...]:
        items = sequence(reader, value, path)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise reader.fail(f"{path}[{i}]", f"expected {self.what}, got {kind_of(item)}")
        return tuple(items)


@dataclass(frozen=True)
class Remotes(Kind):
    """``remote`` and ``remotes`` merged, ``remote`` first, duplicates and empty ones dropped.

    ``problem(url)`` checks each one; its key path names the key it came from.
    """

    problem: Callable[[str], str | None] | None = None

    def take(self, reader: Reader, entries: dict[str, Any], names: tuple[str, ...], path: str) -> tuple:
        single, many = names
        merged: dict[str, str] = {}  # url -> its key path
        if entries.get(single) is not None:
            url = Text().read(reader, entries[single], join(path, single))
            if url:
                merged[url] = join(path, single)
        for i, url in enumerate(Strings("a URL string").read(reader, entries.get(many), join(path, many))):
            if url and url not in merged:
                merged[url] = f"{join(path, many)}[{i}]"
        for url, where in merged.items():
            problem = self.problem(url) if self.problem else None
            if problem:
                raise reader.fail(where, problem)
        return tuple(merged)


@dataclass(frozen=True)
class Nested(Kind):
    """One section inside another (``authentication``); ``listed``: its keys get rows of their own."""

    section: type
    listed: bool = True

    def read(self, reader: Reader, value: Any, path: str) -> Any:
        return reader.section(self.section, value, path)


@dataclass(frozen=True)
class Sections(Kind):
    """A list of sections; ``choose(reader, entries, path)`` picks each one's type when several exist."""

    sections: tuple[type, ...]
    choose: Callable[[Reader, dict, str], type] | None = None

    def read(self, reader: Reader, value: Any, path: str) -> tuple:
        result = []
        before = len(reader.errors)
        for i, item in enumerate(sequence(reader, value, path)):
            result.append(reader.attempt(lambda: self._item(reader, item, f"{path}[{i}]"))[1])
        if len(reader.errors) > before:
            raise Reported()
        return tuple(result)

    def _item(self, reader: Reader, item: Any, where: str) -> Any:
        everything = {n: k for cls in self.sections for k in declared(cls) for n in k.names}
        entries = reader.mapping(item, where, tuple(everything))
        cls = self.choose(reader, entries, where) if self.choose else self.sections[0]
        keys = declared(cls)
        own = {n for k in keys for n in k.names}
        for name in [n for n in entries if n not in own]:  # in file order
            if _unset(entries[name], everything[name].default):
                continue  # the original's documented example lists every key, empty, on a stream
            users = [c.TYPE for c in self.sections if name in {n for k in declared(c) for n in k.names}]
            reader.warn(join(where, name), f"ignored: only a {' or '.join(users)} resource uses it")
        return reader.build(cls, entries, where, keys, where=where)


def _unset(value: Any, default: Any) -> bool:
    """Whether a value says nothing: empty, or its key's default."""
    return value in ("", [], {}) or (type(value) is type(default) and value == default)


def sequence(reader: Reader, value: Any, path: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise reader.fail(path, f"expected a list, got {kind_of(value)}")
    return value


def join(path: str, key: str) -> str:
    # A key with a newline or other control character would break the
    # one-line message: such keys are shown quoted.
    key = key if key.isprintable() else repr(key)
    return f"{path}.{key}" if path else key


def kind_of(value: Any) -> str:
    if isinstance(value, HugeNumber):
        return f"a number of {value.digits} digits"
    return {dict: "a mapping", Mapping: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def listed(choices: tuple) -> str:
    return ", ".join(str(c) for c in choices)
