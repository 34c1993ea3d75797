"""The README's table of config keys, rendered from their declarations."""

from __future__ import annotations

from typing import Any, Iterator

from .keys import REQUIRED, Nested, Section, Sections, declared


def reference(section: type, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """(key, default, doc) for every key of ``section`` and the sections inside it."""
    for k in declared(section):
        name = ", ".join(f"`{prefix}{n}`" for n in k.names)
        doc = ("new: " if k.key.new else "") + k.key.doc
        yield name, _shown(k.default), doc
        kind = k.key.kind
        if isinstance(kind, Nested) and kind.listed:
            yield from reference(kind.section, f"{prefix}{k.names[0]}.")
        elif isinstance(kind, Sections):
            # A key of several sections is one row; where they differ, each one's doc says which.
            rows: dict[str, dict[str, tuple[str, str]]] = {}
            for cls in kind.sections:
                for name, default, doc in reference(cls, f"{prefix}{k.names[0]}[]."):
                    rows.setdefault(name, {})[cls.TYPE] = (default, doc)
            for name, by_type in rows.items():
                described = set(by_type.values())
                if len(by_type) == len(kind.sections) and len(described) == 1:
                    yield (name, *described.pop())
                    continue
                defaults = {default for default, _ in by_type.values()}
                labels: dict[str, list[str]] = {}  # doc -> the types it is said of
                for label, (_, doc) in by_type.items():
                    labels.setdefault(doc, []).append(label)
                docs = "; ".join(f"({', '.join(types)}) {doc}" for doc, types in labels.items())
                yield name, defaults.pop() if len(defaults) == 1 else "", docs


def _shown(default: Any) -> str:
    if default is REQUIRED:
        return "required"
    if default is None or default in ((), {}):
        return ""
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, Section):
        return ""
    if isinstance(default, tuple):
        return ", ".join(f"`{item}`" for item in default)
    return f"`{default}`" if default != "" else '`""`'
