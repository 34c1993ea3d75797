"""The streaming core: each stream's upstream, lifecycle, hub and viewers,
admission, and the relay that starts and stops every stream.

Nothing here imports Flask, werkzeug or any WSGI object: the web layer
(:mod:`restreamer.web`) translates what the core decides into HTTP.  Nor
does anything here import operations (:mod:`restreamer.ops`): they read the
streams through :mod:`.view`, and :mod:`restreamer.assembly` wires them up.
"""
