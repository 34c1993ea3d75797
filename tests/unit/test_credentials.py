"""The authentication decision: basic and bearer credentials against the
userlist, compared in constant time, and the header notifications send."""

import base64

import pytest

import restreamer.core.credentials as credentials
from restreamer.config import Authentication, from_dict
from restreamer.core.credentials import Authenticator, authorization_header

USERS = {"alice": {"password": "wonder land"}, "bob": {"password": "büro-tøken"},
         "carol": {"password": "c"}}


def authenticator(auth: dict) -> Authenticator:
    config = from_dict({"userlist": USERS, "resources": [
        {"type": "api", "api": "health", "serve": "/h", "authentication": auth}]})
    return Authenticator(config.resources[0].authentication, config.userlist)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def wsgi(header: str) -> str:
    """A header as WSGI hands it over: its bytes decoded as latin-1 (PEP 3333)."""
    return header.encode("utf-8").decode("latin-1")


def test_basic_grants_the_listed_users_only():
    auth = authenticator({"type": "basic", "realm": "tv", "users": ["alice", "bob"]})
    assert auth.required and auth.realm == "tv"
    assert auth.allows(basic("alice", "wonder land"))
    assert auth.allows("basic  " + basic("alice", "wonder land")[6:] + " ")  # scheme case, spaces
    assert auth.allows(wsgi(basic("bob", "büro-tøken")))
    assert not auth.allows(basic("alice", "wrong"))
    assert not auth.allows(basic("carol", "c"))  # a known user, not allowed here
    assert not auth.allows("Bearer wonder land")  # the other scheme
    assert not auth.allows(None) and not auth.allows("")


def test_bearer_takes_the_password_as_token():
    auth = authenticator({"type": "bearer", "users": ["bob"]})
    assert auth.allows(wsgi("Bearer büro-tøken"))
    assert not auth.allows("Bearer büro-tøken")  # not what a client's UTF-8 bytes decode to
    assert not auth.allows(basic("bob", "büro-tøken"))


def test_no_authentication_allows_everyone_and_an_unknown_type_denies_everyone():
    assert authenticator({}).allows(None)
    assert not authenticator({}).required
    userlist = from_dict({"userlist": USERS}).userlist
    digest = Authenticator(Authentication(type="digest", users=("alice",)), userlist)
    assert digest.required
    assert not digest.allows("Digest anything") and not digest.allows(basic("alice", "wonder land"))


def test_every_allowed_credential_is_compared_whichever_matches(monkeypatch):
    compared = []

    def compare_digest(a, b):
        compared.append(b)
        return a == b

    monkeypatch.setattr(credentials.hmac, "compare_digest", compare_digest)
    auth = authenticator({"type": "basic", "users": ["alice", "bob", "carol"]})
    for user, password in [("alice", "wonder land"), ("carol", "c"), ("nobody", "x")]:
        compared.clear()
        auth.allows(basic(user, password))
        assert len(compared) == 3  # neither timing nor position tells who matched


@pytest.mark.parametrize("auth, expected", [
    ({"type": "basic", "user": "alice"}, b"Basic " + base64.b64encode(b"alice:wonder land")),
    ({"type": "bearer", "user": "bob"}, "Bearer büro-tøken".encode()),
])
def test_notifications_send_the_header_the_decision_accepts(auth, expected):
    config = from_dict({"userlist": USERS, "notifications": [
        {"event": "heartbeat", "type": "url", "url": "http://n/", "authentication": auth}]})
    header = authorization_header(config.notifications[0].authentication, config.userlist)
    assert header == {"Authorization": expected}
    receiver = authenticator({"type": auth["type"], "users": [auth["user"]]})
    assert receiver.allows(expected.decode("latin-1"))


def test_no_header_for_an_unknown_user_or_type():
    userlist = from_dict({"userlist": USERS}).userlist
    assert authorization_header(Authentication(type="basic", user="nobody"), userlist) == {}
    assert authorization_header(Authentication(type="digest", user="alice"), userlist) == {}


def test_an_empty_type_is_the_originals_pass_authenticator_and_an_empty_user_names_nobody():
    # The Go original's documented example: every key there, empty.
    config = from_dict({"userlist": USERS, "resources": [
        {"type": "api", "api": "health", "serve": "/h",
         "authentication": {"type": "", "realm": "", "user": "", "users": []}}],
        "notifications": [{"event": "heartbeat", "url": "http://n/",
                           "authentication": {"type": "", "user": ""}}]})
    auth = Authenticator(config.resources[0].authentication, config.userlist)
    assert not auth.required and auth.allows(None)
    assert authorization_header(config.notifications[0].authentication, config.userlist) == {}
    assert config.warnings == ()
    assert config.notes == (
        "<dict>: resources[0].authentication: type is empty: no authentication "
        "(everyone gets in, as in the original)",
        "<dict>: notifications[0].authentication: type is empty: no credentials are sent")


def test_an_empty_user_beside_a_type_is_ignored():
    auth = authenticator({"type": "basic", "user": "", "users": ["alice"]})
    assert auth.allows(basic("alice", "wonder land")) and not auth.allows(basic("", ""))
