"""Basic and bearer authentication on a stream, a static and API resources."""

import base64
import json

import pytest

from tests.support.server import RestreamerProcess
from tests.support.upstream import TSUpstream
from tests.support.viewer import http_get

USERS = {"alice": "wonder:land", "bob": "builder", "carol": "pässwörd", "dave": "dave-secret"}


def basic(user, password=None):
    token = base64.b64encode(f"{user}:{USERS[user] if password is None else password}".encode())
    return "Basic " + token.decode()


def bearer(user):
    # Raw UTF-8 bytes on the wire, as a client with a non-ASCII token sends them.
    return b"Bearer " + USERS[user].encode("utf-8")


@pytest.fixture(scope="module")
def server(sample, tmp_path_factory):
    directory = tmp_path_factory.mktemp("auth")
    page = directory / "page.txt"
    page.write_text("members only")
    source = TSUpstream(sample)
    config = {
        "userlist": {name: {"password": password} for name, password in USERS.items()},
        "resources": [
            {"type": "stream", "serve": "/tv.ts", "remote": source.url,
             "authentication": {"type": "basic", "realm": "TV", "users": ["alice", "bob"]}},
            {"type": "static", "serve": "/page.txt", "remote": page.as_uri(),
             "authentication": {"type": "bearer", "realm": "Docs", "user": "carol", "users": ["bob"]}},
            {"type": "api", "api": "health", "serve": "/health",
             "authentication": {"type": "basic", "user": "alice"}},
            {"type": "api", "api": "statistics", "serve": "/statistics",
             "authentication": {"type": "bearer", "users": ["bob"]}},
            {"type": "api", "api": "check", "serve": "/check", "remote": "/tv.ts",
             "authentication": {"type": "bearer", "realm": 'say "hi"', "users": ["bob"]}},
            {"type": "api", "api": "prometheus", "serve": "/metrics",
             "authentication": {"type": "digest", "realm": "x", "users": ["alice"]}},
            {"type": "api", "api": "health", "serve": "/open"},
        ],
    }
    process = RestreamerProcess(config, directory).start()
    process.wait_log("stream online")
    yield process
    process.close()
    source.stop()
    print(process.output_tail())


def status_of(server, path, authorization=None):
    headers = {} if authorization is None else {"Authorization": authorization}
    status, response_headers, body = http_get(server.url(path), headers)
    return status, response_headers


def stream_status(server, viewer, authorization=None):
    headers = {} if authorization is None else {"Authorization": authorization}
    client = viewer(server.url("/tv.ts"), headers=headers)
    return client.wait_status(), client


MALFORMED = ["", "Basic", "Basic ", "Basic !!!not-base64!!!", "Basic " + base64.b64encode(b"alice").decode(),
             "Bearer " + USERS["alice"], "Basicx " + basic("alice")[6:], "alice:wonder:land"]


# -- a stream (basic, with realm) ------------------------------------------------


def test_stream_without_credentials_is_challenged(server, viewer):
    status, client = stream_status(server, viewer)
    assert status == 401
    assert client.headers["WWW-Authenticate"].startswith('Basic realm="TV"')
    assert client.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert client.wait_closed() == b""


@pytest.mark.parametrize("authorization", MALFORMED + [basic("alice", "wonder"), basic("bob", "Builder"),
                                                       basic("dave"), basic("alice", "wonder:land ")])
def test_stream_refuses_malformed_wrong_or_unlisted_credentials(server, viewer, authorization):
    status, client = stream_status(server, viewer, authorization)
    assert status == 401
    assert client.headers["WWW-Authenticate"].startswith('Basic realm="TV"')


@pytest.mark.parametrize("authorization", [basic("alice"), basic("bob"), "basic " + basic("bob")[6:],
                                           "  Basic   " + basic("alice")[6:] + " "])
def test_stream_admits_listed_users(server, viewer, authorization):
    status, client = stream_status(server, viewer, authorization)
    assert status == 200
    client.wait_bytes(188 * 7)


def test_refused_viewer_is_logged(server, viewer):
    mark = server.mark()
    assert stream_status(server, viewer, basic("dave"))[0] == 401
    entry = server.wait_log(lambda e: e.get("event") == "request refused", since=mark)
    assert (entry["remote"], entry["path"], entry["status"]) == ("127.0.0.1", "/tv.ts", 401)


# -- a static resource (bearer, with realm) ----------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer ", "Bearer wrong", basic("bob"),
                                           "Bearer " + USERS["alice"], "Token " + USERS["bob"]])
def test_static_refuses_bad_tokens_with_a_bearer_challenge(server, authorization):
    status, headers = status_of(server, "/page.txt", authorization)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith('Bearer realm="Docs"')


@pytest.mark.parametrize("user", ["bob", "carol"])
def test_static_admits_listed_tokens(server, user):
    status, _, body = http_get(server.url("/page.txt"), {"Authorization": bearer(user)})
    assert (status, body) == (200, b"members only")


# -- APIs ------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Basic", basic("alice", "nope"), basic("bob"),
                                           "Bearer " + USERS["alice"]])
def test_api_without_realm_answers_403(server, authorization):
    status, headers = status_of(server, "/health", authorization)
    assert status == 403
    assert "WWW-Authenticate" not in headers


def test_api_admits_the_right_user(server):
    status, _, body = http_get(server.url("/health"), {"Authorization": basic("alice")})
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, body = http_get(server.url("/statistics"), {"Authorization": bearer("bob")})
    assert status == 200 and "/tv.ts" in json.loads(body)["streams"]
    assert status_of(server, "/statistics", bearer("carol"))[0] == 403


def test_realm_is_quoted_in_the_challenge(server):
    status, headers = status_of(server, "/check")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith('Bearer realm="say \\"hi\\""')
    assert http_get(server.url("/check"), {"Authorization": bearer("bob")})[:3:2] == (200, b"200 ok")


def test_api_refusal_is_text_and_is_logged(server):
    mark = server.mark()
    status, headers = status_of(server, "/statistics", "Bearer wrong")
    assert status == 403
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    entry = server.wait_log(lambda e: e.get("event") == "request refused", since=mark)
    assert (entry["remote"], entry["path"], entry["status"]) == ("127.0.0.1", "/statistics", 403)


@pytest.mark.parametrize("authorization", [None, basic("alice"), "Digest " + USERS["alice"],
                                           "Bearer " + USERS["alice"]])
def test_unknown_type_denies_everything(server, authorization):
    assert status_of(server, "/metrics", authorization)[0] == 403


def test_unknown_type_is_a_config_warning(server):
    entry = server.wait_log("config warning")
    assert "resources[5].authentication.type" in entry["detail"]
    assert "'digest'" in entry["detail"]


def test_no_authentication_means_open(server):
    assert status_of(server, "/open")[0] == 200
    assert status_of(server, "/open", "Basic garbage")[0] == 200


def test_credentials_never_appear_in_the_logs(server):
    """Runs last in this module: every credential above has been sent by now."""
    text = "\n".join([json.dumps(entry, ensure_ascii=False) for entry in server.logs]
                     + server.stderr_lines)
    secrets = [p for p in USERS.values()] + [basic(u)[6:] for u in USERS] + ["wonder"]
    leaked = [secret for secret in secrets if secret in text]
    assert not leaked, leaked
    assert server.find_logs("request refused")  # the refusals themselves were logged
