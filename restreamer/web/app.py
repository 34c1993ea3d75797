"""A bare Flask app serving one configuration: what the CLI and gunicorn run."""

from __future__ import annotations

import os

from flask import Flask

from ..config import Config, load_config
from ..core.relay import Relay
from .blueprint import create_blueprint


def create_app(config: str | os.PathLike | dict | Config | Relay) -> Flask:
    """A Flask app with every resource of ``config`` mounted at the root.

    ``app.extensions["restreamer"]`` is the :class:`~restreamer.core.relay.Relay`;
    call its ``start()`` once the process will serve (the CLI and the gunicorn
    worker do), or the first request starts it.
    """
    relay = config if isinstance(config, Relay) else Relay(load_config(config))
    app = Flask("restreamer", static_folder=None)
    app.register_blueprint(create_blueprint(relay))
    return app
