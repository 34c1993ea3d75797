"""Reading a config file into plain data: JSON or YAML, safely.

Only regular files are read (a FIFO would hang, ``/dev/zero`` never ends), and
at most :data:`MAX_SIZE` bytes of them.  Mappings remember keys given twice
(:class:`~restreamer.config.keys.Mapping`), so the reader can refuse them with
their key path; integers too long to convert become
:class:`~restreamer.config.keys.HugeNumber` for the same reason.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

import yaml

from ..sources.base import describe
from .errors import ConfigError
from .keys import HugeNumber, Mapping

#: A config is a page of text; more is a mistake (a log file, a device).
MAX_SIZE = 16 * 1024 * 1024
#: Longer integers are no sensible value (and Python refuses beyond 4300 digits).
MAX_DIGITS = 100

_FILE_TYPES = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
               (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def read(path: str) -> tuple[str, os.stat_result]:
    """The text of the regular file at ``path``, and its status."""
    try:
        # Non-blocking, so that opening a FIFO returns at once (and is then refused).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise ConfigError(path, "", f"cannot read: {describe(e)}") from None
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_SIZE:
        os.close(fd)
        what = next((name for test, name in _FILE_TYPES if test(status.st_mode)), "not a file")
        raise ConfigError(path, "", f"cannot read: not a regular file ({what})"
                          if not stat.S_ISREG(status.st_mode) else
                          f"cannot read: larger than {MAX_SIZE // 2**20} MiB")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_SIZE + 1)
        except OSError as e:
            raise ConfigError(path, "", f"cannot read: {describe(e)}") from None
    if len(data) > MAX_SIZE:
        raise ConfigError(path, "", f"cannot read: larger than {MAX_SIZE // 2**20} MiB")
    try:
        return data.decode("utf-8"), status
    except UnicodeDecodeError as e:
        raise ConfigError(path, "", f"not UTF-8 text: {e.reason} at byte {e.start}") from None


def parse(text: str, source: str) -> Any:
    """Plain data from JSON for ``.json`` files, YAML for ``.yaml``/``.yml``, else sniffed."""
    ext = os.path.splitext(source)[1].lower()
    as_json = ext == ".json" or (ext not in (".yaml", ".yml") and text.lstrip().startswith("{"))
    try:
        if as_json:
            return json.loads(text, object_pairs_hook=_json_mapping, parse_int=_json_int)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except json.JSONDecodeError as e:
        raise ConfigError(source, "", f"invalid JSON: {e.msg}", line=e.lineno, column=e.colno) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(source, "", f"invalid YAML: {problem}", line=mark and mark.line + 1,
                          column=mark and mark.column + 1) from None
    except RecursionError:
        raise ConfigError(source, "", "document is nested too deeply") from None


def _json_mapping(pairs: list[tuple[str, Any]]) -> Mapping:
    result = Mapping()
    duplicates = []
    for name, value in pairs:
        if name in result and name != "":  # "" keys are comments, repeated by design
            duplicates.append((name, None, None))
        result[name] = value
    result.duplicates = tuple(duplicates)
    return result


def _json_int(digits: str) -> int | HugeNumber:
    return HugeNumber(len(digits.lstrip("-"))) if len(digits) > MAX_DIGITS else int(digits)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with duplicate keys recorded and huge integers kept as such."""


def _yaml_mapping(loader: _Loader, node: yaml.MappingNode):
    data = Mapping()
    yield data  # first, as PyYAML's own constructor does, for documents that refer to themselves
    duplicates = _duplicates(loader, node)  # before merge keys ("<<") are flattened in
    data.update(loader.construct_mapping(node))
    data.duplicates = duplicates


def _duplicates(loader: _Loader, node: yaml.MappingNode) -> tuple:
    first: dict[Any, int] = {}
    found = []
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        name = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            if name in first:
                if name != "":
                    found.append((name, line, first[name]))
                continue
            first[name] = line
        except TypeError:  # an unhashable key: PyYAML's constructor says so
            continue
    return tuple(found)


def _yaml_int(loader: _Loader, node: yaml.ScalarNode) -> int | HugeNumber:
    text = loader.construct_scalar(node)
    if len(text) > MAX_DIGITS:
        return HugeNumber(len(text.lstrip("+-")))
    return loader.construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:map", _yaml_mapping)
_Loader.add_constructor("tag:yaml.org,2002:int", _yaml_int)
