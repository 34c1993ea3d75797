"""``python -m restreamer [CONFIG]``."""

from .cli import run

run()
