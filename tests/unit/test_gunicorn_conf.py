"""The shipped gunicorn settings bind where the config says (``listen``),
unless RESTREAMER_BIND says otherwise (and ``-b`` beats both, in gunicorn)."""

import importlib

import pytest

import restreamer.web.gunicorn_conf as settings


def bind_for(monkeypatch, tmp_path, listen=None, env_bind=None):
    config = tmp_path / "restreamer.yaml"
    config.write_text(f'listen: "{listen}"\n' if listen is not None else "{}\n")
    monkeypatch.setenv("RESTREAMER_CONFIG", str(config))
    if env_bind is None:
        monkeypatch.delenv("RESTREAMER_BIND", raising=False)
    else:
        monkeypatch.setenv("RESTREAMER_BIND", env_bind)
    return getattr(reloaded(monkeypatch), "bind", None)


def reloaded(monkeypatch):
    """The settings module read afresh (a reload keeps names it no longer sets)."""
    monkeypatch.delattr(settings, "bind", raising=False)
    return importlib.reload(settings)


@pytest.mark.parametrize("listen, bind", [
    ("127.0.0.1:8123", ["127.0.0.1:8123"]),
    ("localhost:http", ["localhost:80"]),
    ("[::1]:9000", ["[::1]:9000"]),
    (":9000", ["[::]:9000"]),  # every interface, v6 and v4, as Go's ":port"
])
def test_the_config_s_listen_is_the_bind(monkeypatch, tmp_path, listen, bind):
    assert bind_for(monkeypatch, tmp_path, listen) == bind


def test_restreamer_bind_overrides_the_config(monkeypatch, tmp_path):
    assert bind_for(monkeypatch, tmp_path, "127.0.0.1:8123", "0.0.0.0:8000,[::]:8001") == \
        ["0.0.0.0:8000", "[::]:8001"]


def test_a_config_that_cannot_load_leaves_gunicorn_s_default(monkeypatch, tmp_path):
    monkeypatch.setenv("RESTREAMER_CONFIG", str(tmp_path / "missing.json"))
    monkeypatch.delenv("RESTREAMER_BIND", raising=False)
    assert not hasattr(reloaded(monkeypatch), "bind")
