"""Which worker pulls an upstream, under ``gunicorn -w N``: one ``flock`` per
upstream, so that every stream of one upstream has the same owner.

Streams whose remotes are identical share one pull inside a process (see
:mod:`.pull`); across the workers of a server they share it only if one
worker pulls for all of them.  So ownership goes by what a pull is shared
by, not by stream: a :class:`Claim` is this process's hold on the lock file
named for that key (a digest of it, in the runtime directory).  The worker
that holds the lock owns every stream of the upstream: it pulls, and serves
each of those streams' sockets (see :mod:`.ownership`), also for a stream
none of its own viewers watches yet.  The others follow.

The streams of one upstream in one process share the one hold: the lock is
taken with the first of them that runs and given up when the last of them
stops.  Meanwhile a follower tries for it every :data:`POLL` seconds, so
when the owner dies (the kernel drops its lock) one follower takes the
upstream over, with all its streams.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Protocol

import gevent

from ..base.lockfile import LockFile
from .clock import REAL, Clock, Timer

#: Seconds between a follower's tries for the lock: how long a dead owner's
#: upstream waits for its next owner, at most.
POLL = 0.25


class Member(Protocol):
    """One stream's part in a claim (:class:`~.ownership.Ownership`)."""

    def serve(self) -> None:
        """The claim is this worker's: serve the stream's socket to the followers."""

    def unserve(self) -> None:
        """The claim is no longer this worker's, or the stream left it: stop serving."""

    def lead(self) -> None:
        """The claim is this worker's and the stream runs: pull the remotes."""

    def follow(self) -> None:
        """Another worker holds the claim and the stream runs: read its socket."""

    def watch(self) -> None:
        """Every :data:`POLL` seconds while this worker owns the claim."""


class Claim:
    """This process's claim on one upstream across the workers: the lock, the
    streams of the upstream here (``members``) and those of them that run
    (``holders``: the lock is held while there are any)."""

    def __init__(self, path: Path, clock: Clock, forget: Callable[["Claim"], None]):
        self.path = path
        self.clock = clock
        self._forget = forget  # drops this claim from its registry once nobody uses it
        self.members: set[Member] = set()
        self.holders: set[Member] = set()
        self.owned = False
        self._lock: LockFile | None = None
        self._poll: Timer | None = None
        self._checking = False

    def enlist(self, member: Member) -> None:
        """A stream of the upstream serves from now on (it may not run yet)."""
        self.members.add(member)
        if self.owned:
            member.serve()

    def withdraw(self, member: Member) -> None:
        """A stream left the upstream (stopped, or took other remotes in a reload)."""
        self.members.discard(member)
        member.unserve()
        self._forget_unused()

    def hold(self, member: Member) -> None:
        """A stream of the upstream runs: it leads or follows, as this worker's role says."""
        if self.holders:
            self.holders.add(member)
            if self.owned:
                member.lead()
            else:
                member.follow()
            return
        self._lock = LockFile(self.path)
        self.holders.add(member)
        # The check may block (a stream's follower stops): not in the timer's callback.
        self._poll = self.clock.every(POLL, lambda: gevent.spawn(self.check))
        if self._lock.acquire():
            self._take()
        else:
            member.follow()

    def release(self, member: Member) -> None:
        """A stream of the upstream stopped; the last one gives up the lock."""
        if member not in self.holders:
            return
        self.holders.discard(member)
        if self.holders:
            return
        self._poll.close()
        self._poll = None
        if self.owned:
            self.owned = False
            for each in list(self.members):
                each.unserve()
        self._lock.close()  # a follower takes the upstream over
        self._lock = None
        self._forget_unused()

    def check(self) -> None:
        """Every :data:`POLL` seconds while a stream of the upstream runs: a
        follower tries for the lock, the owner watches its streams."""
        if self._checking or self._lock is None:
            return
        self._checking = True
        try:
            if self.owned:
                for member in list(self.members):
                    member.watch()
            elif self._lock.acquire():
                self._take()
        finally:
            self._checking = False

    def _take(self) -> None:
        self.owned = True
        for member in list(self.members):
            member.serve()
        for member in list(self.holders):
            member.lead()

    def _forget_unused(self) -> None:
        if not self.members and not self.holders:
            self._forget(self)


class Claims:
    """The claims of one relay's streams, by what their pulls are shared by."""

    def __init__(self, directory: Path, clock: Clock = REAL):
        self.directory = directory
        self.clock = clock
        self._claims: dict[str, Claim] = {}

    def of(self, key: str) -> Claim:
        """The claim on the upstream of the pulls whose :attr:`~.pull.Pull.key_text`
        is ``key``: the same object for as long as any stream enlists in or holds it."""
        claim = self._claims.get(key)
        if claim is None:
            claim = self._claims[key] = Claim(self.directory / lock_name(key), self.clock,
                                              lambda gone: self._drop(key, gone))
        return claim

    def get(self, key: str) -> Claim | None:
        """The claim on that upstream if a stream here enlists in or holds it."""
        return self._claims.get(key)

    def _drop(self, key: str, claim: Claim) -> None:
        if self._claims.get(key) is claim:
            del self._claims[key]


def lock_name(key: str) -> str:
    """The lock file of an upstream: the same name in every worker, short and plain."""
    return f"upstream-{hashlib.sha1(key.encode()).hexdigest()[:16]}.lock"
