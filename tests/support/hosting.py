"""A host application around restreamer's blueprint, as README's embedding
example builds one, for the helper programs that run it (embed, twomounts,
devserver): each logs "listening" with its port in restreamer's JSON log
format, so RestreamerProcess can run it like the CLI.

Importing this patches nothing: a program that serves under gevent
monkeypatches before it imports this module.
"""

import signal

import gevent
from flask import Blueprint, Flask

import restreamer
from restreamer import log


def host_app(config: str, *prefixes: str) -> tuple[Flask, Blueprint]:
    """A Flask app with restreamer's blueprint of ``config`` mounted at each
    of ``prefixes`` ("" for the root), one blueprint (one service) for all,
    and a page of its own at "/" unless a mount is there."""
    app = Flask("host")
    if "" not in prefixes:
        @app.route("/")
        def index():
            return "host app index\n"

    blueprint = restreamer.create_blueprint(config)
    for number, prefix in enumerate(prefixes):
        app.register_blueprint(blueprint, url_prefix=prefix or None,
                               name=f"{blueprint.name}{number}" if number else None)
    return app, blueprint


def listening(program: str, port: int) -> None:
    """The log line RestreamerProcess waits for."""
    log.get_logger(program).info("listening", port=port)


def serve_under_gevent(program: str, server, blueprint: Blueprint) -> None:
    """Run a gevent ``server`` of the host app with the blueprint's upstreams
    started at once, until SIGTERM."""
    server.start()
    listening(program, server.address[1])
    blueprint.service.start()
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()
    blueprint.service.stop()
