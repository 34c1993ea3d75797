"""MPEG transport stream knowledge, pure bytes in and out: packet framing
(packets.py) and program-specific information and keyframes (psi.py).

No I/O and no dependency on the rest of restreamer, so sources, the core and
operations can all build on it.
"""
