"""restreamer: an HTTP relay for live MPEG transport streams.

The public API is :func:`create_blueprint` (mount restreamer in any Flask
app) and :func:`create_app` (a bare app, as the CLI and gunicorn run it).
Importing this package has no side effects: heavier modules load on first use,
so the CLI can monkeypatch with gevent before anything touches sockets.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from flask import Blueprint, Flask


def create_blueprint(config: str | os.PathLike | dict | Any, name: str = "restreamer") -> "Blueprint":
    """A Flask blueprint serving every resource of ``config``.

    ``config`` is a file path (JSON or YAML), a dict in the file's schema, or
    a loaded :class:`restreamer.config.Config`.
    """
    from .web.blueprint import create_blueprint as create

    return create(config, name)


def create_app(config: str | os.PathLike | dict | Any) -> "Flask":
    """A Flask app serving ``config`` at the root."""
    from .web.app import create_app as create

    return create(config)


__all__ = ["__version__", "create_app", "create_blueprint"]
