"""The on-demand keys as the config reads them (tests/test_ondemand.py runs them)."""

from restreamer.config import from_dict


def stream(serve, **extra):
    return {"type": "stream", "serve": serve, "remote": "tcp://127.0.0.1:9", **extra}


def test_a_stream_overrides_the_global_ondemand_and_idletimeout():
    config = from_dict({"ondemand": True, "idletimeout": 5, "resources": [
        stream("/a.ts"), stream("/b.ts", ondemand=False, idletimeout=60)]})
    a, b = config.streams
    assert (config.ondemand_of(a), config.idletimeout_of(a)) == (True, 5)
    assert (config.ondemand_of(b), config.idletimeout_of(b)) == (False, 60)
    defaults = from_dict({"resources": [stream("/a.ts")]})
    assert (defaults.ondemand_of(defaults.streams[0]), defaults.idletimeout) == (False, 10)


def test_on_demand_without_a_grace_period_is_warned_about():
    config = from_dict({"graceperiod": 0, "resources": [stream("/a.ts", ondemand=True)]})
    assert any("graceperiod: is 0, so the first viewer of an idle on-demand stream is refused" in w
               for w in config.warnings)
    assert not from_dict({"graceperiod": 0, "resources": [stream("/a.ts")]}).warnings
