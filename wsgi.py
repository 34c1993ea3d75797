"""``gunicorn -k gevent wsgi:app`` from a checkout: the app is the package's,
:mod:`restreamer.wsgi` (``gunicorn restreamer.wsgi:app`` wherever restreamer
is installed)."""

from restreamer.wsgi import app

__all__ = ["app"]
