"""MPEG transport stream knowledge, pure bytes in and out: packet framing.

No I/O and no dependency on the rest of restreamer, so sources, the core and
operations can all build on it.
"""
