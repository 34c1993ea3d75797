"""``gunicorn -c config/gunicorn.conf.py wsgi:app`` from a checkout: the
package's settings, which an installed restreamer names as
``gunicorn -c python:restreamer.web.gunicorn_conf restreamer.wsgi:app``."""

from restreamer.web.gunicorn_conf import *  # noqa: F401,F403

