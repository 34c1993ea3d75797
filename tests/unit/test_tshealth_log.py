"""restreamer.ops.tshealth.HealthLog: one line when a stream turns bad, one when
it is clean again, at most one per stream per minute."""

from types import SimpleNamespace

from structlog.testing import capture_logs

from restreamer.ops.tshealth import CLEAN_AFTER, LOG_INTERVAL, HealthLog
from restreamer.ts.analysis import Analyser
from restreamer.ts.packets import PacketAligner
from tests.unit.test_analysis import SAMPLE

def _stream():
    analyser = Analyser()
    analyser.connected(PacketAligner(), 0.0)
    return SimpleNamespace(analyser=analyser)


def _jump(stream, times=1):
    """Plain repetitions of the sample: three continuity errors per join."""
    stream.analyser.feed(SAMPLE * (times + 1), 0.0)


def test_bad_then_clean_at_most_once_a_minute_per_stream():
    bad, good = _stream(), _stream()
    log = HealthLog({"/bad.ts": bad, "/good.ts": good})
    with capture_logs() as lines:
        log.check(0.0)
        assert lines == []
        _jump(bad)
        log.check(1.0)
        _jump(bad)
        log.check(2.0)  # more errors within the minute: no second line
        log.check(1.0 + LOG_INTERVAL - 1)
    assert [(e["event"], e["log_level"], e["stream"], e["errors"]) for e in lines] == [
        ("stream has TS errors", "warning", "/bad.ts", {"Continuity_count_error": 3})]
    with capture_logs() as lines:
        log.check(2.0 + CLEAN_AFTER - 1)  # a minute after the first line, but errors a moment ago
        log.check(2.0 + CLEAN_AFTER + 1)
        log.check(2.0 + CLEAN_AFTER + 5)
    since_warning = bad.analyser.error_counts()["Continuity_count_error"] - 3
    assert since_warning > 0
    assert [(e["event"], e["stream"], e["errors"]) for e in lines] == [
        ("stream TS clean again", "/bad.ts", {"Continuity_count_error": since_warning})]


def test_a_flapping_stream_is_reported_by_its_state_when_the_minute_is_up():
    stream = _stream()
    log = HealthLog({"/flap.ts": stream})
    with capture_logs() as lines:
        _jump(stream)
        log.check(0.0)
        for second in range(1, int(3 * LOG_INTERVAL)):
            if second % 30 == 0:
                _jump(stream)
            log.check(float(second))
    # errors every 30 s: never clean for a minute, so one line, then no news
    assert [e["event"] for e in lines] == ["stream has TS errors"]
