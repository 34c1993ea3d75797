"""The dashboard's overview: each stream's history sliced by ``since`` (clamped
to what is kept), and one encoding per sample shared by every poll alike."""

import json

import gevent

from restreamer.config import from_dict
from restreamer.core.limits import Limits
from restreamer.core.stream import Stream
from restreamer.core.view import StreamViews
from restreamer.ops.overview import HISTORY, SHARED_ANSWERS, Overview
from restreamer.ops.snapshot import SLICE


def overview(count: int = 3) -> Overview:
    config = from_dict({"resources": [{"type": "stream", "serve": f"/s{i}.ts", "remote": f"tcp://up{i}:1"}
                                      for i in range(count)]})
    return Overview(StreamViews({s.serve: Stream(s, config) for s in config.streams}), Limits())


def answer(view: Overview, since: int) -> dict:
    return json.loads(b"{" + view.summary(since) + b"}")


def test_since_selects_the_samples_not_yet_seen_and_is_clamped_to_the_history():
    view = overview()
    for _ in range(HISTORY + 5):
        view.sample()
    assert answer(view, 0)["seq"] == HISTORY + 5
    lengths = {since: len(answer(view, since)["streams"][0]["history"]["viewers"])
               for since in (-99_999_999_999, 0, 5, HISTORY + 2, HISTORY + 5, 10 ** 12)}
    assert lengths == {-99_999_999_999: HISTORY, 0: HISTORY, 5: HISTORY, HISTORY + 2: 3,
                       HISTORY + 5: 0, 10 ** 12: 0}
    assert [s["path"] for s in answer(view, 0)["streams"]] == ["/s0.ts", "/s1.ts", "/s2.ts"]


def test_polls_for_the_same_samples_share_one_encoding(monkeypatch):
    view = overview()
    view.sample()
    encodings = []
    encode = view._encode

    def counted(since, seq):
        encodings.append(since)
        gevent.sleep(0.01)  # still encoding when the others ask
        return encode(since, seq)

    monkeypatch.setattr(view, "_encode", counted)
    polls = [gevent.spawn(view.summary, since) for since in (0, -5, 0, 1, 1)]
    gevent.joinall(polls, raise_error=True)
    assert sorted(encodings) == [0, 1]  # -5 is 0, clamped
    assert polls[0].value is polls[1].value is polls[2].value
    view.sample()
    view.summary(0)
    assert sorted(encodings) == [0, 0, 1]  # a new sample, a new answer
    for since in range(SHARED_ANSWERS * 2):
        view.summary(-since)  # all of it: shared
        view.summary(view.seq - since % 2)  # the last sample, or nothing: shared too
    assert len(encodings) == 3 + 2
    for _ in range(SHARED_ANSWERS * 2):
        view.sample()
    encodings.clear()
    for _ in range(2):
        for since in range(SHARED_ANSWERS * 2):
            view.summary(since)  # every one in turn: only the first few are kept
    assert len(encodings) == SHARED_ANSWERS * 2 + SHARED_ANSWERS


def test_a_whole_history_is_encoded_in_slices(monkeypatch):
    """The event loop runs between slices of streams (the viewers' writes)."""
    view = overview(SLICE * 2 + 1)
    view.sample()
    ran = []
    ticker = gevent.spawn(lambda: [ran.append(gevent.sleep(0.0005)) for _ in range(100)])
    view.summary(0)
    assert ran, "the loop never ran while the answer was encoded"
    ticker.kill()
