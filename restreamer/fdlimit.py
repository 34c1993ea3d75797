"""The file descriptor limit: every viewer holds one, so the soft limit that
shells commonly set (1024) caps the viewers.  Like the Go runtime and nginx,
restreamer raises the soft limit to the hard one at start."""

from __future__ import annotations

import resource
from typing import Any

#: Descriptors kept for what is not a viewer: the listener, the log, the
#: event loop, standard streams, DNS and TLS, statics and notifications.
RESERVED = 64
#: Descriptors a stream's upstream may hold (a forked command: a socket pair
#: and its stderr pipe).
PER_STREAM = 3


def raise_limit(log: Any, maxconnections: int = 0, streams: int = 0) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit, log both, and warn when
    ``maxconnections`` viewers could not all be served; the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = soft
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as e:  # e.g. an unlimited hard limit the kernel caps
            log.warning("file descriptor limit not raised", soft=soft, hard=_shown(hard), reason=str(e))
    log.info("file descriptor limit", soft=_shown(soft), hard=_shown(hard), was=_shown(before))
    room = soft - RESERVED - PER_STREAM * streams
    if soft != resource.RLIM_INFINITY and maxconnections > room:
        log.warning("file descriptor limit below maxconnections", maxconnections=maxconnections,
                    viewers_possible=max(room, 0), soft=soft,
                    remedy="raise the hard limit (ulimit -Hn, systemd LimitNOFILE=)")
    return soft


def _shown(limit: int) -> int | str:
    return "unlimited" if limit == resource.RLIM_INFINITY else limit
