"""The streaming core: packet framing, the hub of each stream, its viewers and
upstream, and the relay that admits viewers and runs the streams' lifecycle.

Nothing here imports Flask, werkzeug or any WSGI object: the web layer
(:mod:`restreamer.web`) translates what the core decides into HTTP.  Nor
does anything here import operations (:mod:`restreamer.ops`): they read the
streams through :mod:`.view`, and :mod:`restreamer.assembly` wires them up.
"""
