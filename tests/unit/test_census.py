"""The viewer census of gunicorn workers, with a real second process: limits
hold across processes, and a process that dies leaks no slots."""

import os
import signal

from restreamer.core.census import Census


def test_limits_hold_across_processes_and_a_dead_one_leaks_no_slots(tmp_path):
    census = Census(tmp_path)
    assert census.admit(5)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a sibling worker with three viewers, killed without any cleanup
        sibling = Census(tmp_path)
        admitted = sum(sibling.admit(5) for _ in range(3))
        os.write(ready_w, bytes([sibling.index, admitted]))
        signal.pause()
        os._exit(0)
    index, admitted = os.read(ready_r, 2)
    try:
        assert (index, admitted) == (census.index + 1, 3)
        assert census.total() == 4
        assert census.admit(5)  # the fifth
        assert not census.admit(5)  # the sixth, whichever process asks
        assert census.total() == 5
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert census.total() == 2  # the dead sibling's three are gone with it
    assert sum(census.admit(5) for _ in range(4)) == 3
    census.release()
    assert census.total() == 4


def test_a_new_worker_reuses_a_dead_ones_record_from_zero(tmp_path):
    pid = os.fork()
    if pid == 0:
        Census(tmp_path).admit(0)
        os._exit(0)
    os.waitpid(pid, 0)
    census = Census(tmp_path)
    assert census.index == 0
    assert census.total() == 0


def test_a_crossing_of_fullconnections_is_reported_once_whichever_worker_asks(tmp_path):
    # Two records of one process: flock locks belong to open files, not processes.
    first, second = Census(tmp_path), Census(tmp_path)
    assert (first.index, second.index) == (0, 1)
    assert (first.first, second.first) == (True, False)
    first.admit(0)
    assert first.crossed(2) is None
    second.admit(0)
    assert [second.crossed(2), first.crossed(2)] == [True, None]
    first.release()
    assert [first.crossed(2), second.crossed(2)] == [False, None]
