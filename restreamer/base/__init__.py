"""The package's lowest layer: helpers every other layer may use, which know
nothing of streams, config or the web (one per concept: lock files, periodic
tasks, outbound HTTP sessions).

``restreamer.version``, ``restreamer.redact`` and ``restreamer.fdlimit``
belong to this layer too.
"""
