"""A bare Flask app serving one configuration: what the CLI and gunicorn run."""

from __future__ import annotations

import os

from flask import Flask

from ..config import Config
from ..core.relay import Relay
from ..assembly import Service
from .blueprint import create_blueprint


def create_app(config: str | os.PathLike | dict | Config | Relay | Service) -> Flask:
    """A Flask app with every resource of ``config`` mounted at the root.

    ``app.extensions["restreamer"]`` is the :class:`~restreamer.assembly.Service`;
    call its ``start()`` once the process will serve (the CLI and the gunicorn
    worker do), or the first request starts it.
    """
    app = Flask("restreamer", static_folder=None)
    app.register_blueprint(create_blueprint(Service.of(config)))
    return app
