"""The base layer's helpers: a lock file excludes every other open file of its
path until closed, and a periodic task runs until stopped."""

import gevent
from gevent.event import Event

from restreamer.base.lockfile import LockFile
from restreamer.base.periodic import Periodic


def test_a_lock_file_excludes_other_open_files_until_closed(tmp_path):
    path = tmp_path / "x.lock"
    holder, other = LockFile(path), LockFile(path)
    assert not other.taken()
    assert holder.acquire() and other.taken()
    holder.write("4242\n")
    assert not other.acquire() and other.read() == "4242"
    holder.close()
    holder.close()  # again does nothing
    assert not other.taken() and other.acquire()
    other.close()


def test_a_held_lock_file_is_held_only_for_its_block(tmp_path):
    path = tmp_path / "x.lock"
    serialised, other = LockFile(path), LockFile(path)
    with serialised.held():
        assert not other.acquire()
    assert other.acquire()


def test_a_periodic_task_runs_every_interval_until_stopped():
    calls = []
    thrice = Event()

    def task():
        calls.append(1)
        if len(calls) == 3:
            thrice.set()

    periodic = Periodic(task, 0.001)
    periodic.start()
    periodic.start()  # again does nothing: one greenlet
    assert thrice.wait(5) and periodic.running
    periodic.stop(wait=True)
    stopped_at = len(calls)
    gevent.sleep(0.02)  # twenty intervals: a task still running would have been called
    assert len(calls) == stopped_at and not periodic.running


def test_a_periodic_task_may_wait_first_and_reads_its_interval_each_time():
    interval = [60.0]
    called = Event()
    periodic = Periodic(called.set, lambda: interval[0], wait_first=True)
    periodic.start()
    assert not called.wait(0.02)  # waits its first interval
    periodic.stop()
    interval[0] = 0.001
    periodic.start()
    assert called.wait(5)
    periodic.stop()
