"""URLs in messages: never a credential, however malformed the URL; malformed ones refused."""

from __future__ import annotations

import pytest

from softmax_core.errors import InvalidInputError
from softmax_core.urls import UNSHOWN, check_url, redact, url_problem

SECRET = "Sup3rS3cret"

# A password holding '/', '?', '#' or '@' (or nothing odd), in URLs that urlsplit reads
# wrong (the password's head as the port, its tail in the path) or right.
LEAKY = [
    (f"https://hookuser:{SECRET}Part/Rest@hooks.example.com/T0KEN", "https://hooks.example.com"),
    (f"http://s3user:{SECRET}/x@127.0.0.1:1/", "http://127.0.0.1:1"),
    (f"http://s3user:{SECRET}@bad_host name:1/", "http://bad_host name:1"),
    (f"https://dluser:{SECRET}/part@mirror.example.com/mnist.npz", "https://mirror.example.com"),
    (f"https://u:{SECRET}?q#f@host.example/p", "https://host.example"),
    (f"https://u:{SECRET}#frag@host.example/p", "https://host.example"),
    (f"https://u:{SECRET}@at@host.example:8443/p?sig=x", "https://host.example:8443"),
    (f"https://u:123/{SECRET}@host.example/p", "https://host.example"),  # parses "fine"
    (f"https://u:{SECRET}@host.example/", "https://host.example"),
    (f"s3://key:{SECRET}/x@bucket/prefix", "s3://bucket"),
    (f"tcp://u:{SECRET}/x@10.0.0.1:8786", "tcp://10.0.0.1:8786"),
    (f"u:{SECRET}@host:9000", "host:9000"),  # no scheme at all
    (f"HTTP://u:{SECRET}@[::1]:9/", "http://[::1]:9"),
    (f"http://u:{SECRET}\x1b]0;x\x07@h/", "http://h"),
]


@pytest.mark.parametrize(("url", "host"), LEAKY)
def test_redact_never_shows_what_comes_before_the_last_at(url: str, host: str) -> None:
    for path in (True, False):
        shown = redact(url, path=path)
        assert SECRET not in shown and "123/" not in shown
        assert shown.startswith(host)
        assert shown.isprintable()
    assert redact(url, path=False) == host + ("?…" if "?" in url.rpartition("@")[2] else "")


def test_redact_keeps_what_is_not_a_credential() -> None:
    assert redact("http://127.0.0.1:9000/") == "http://127.0.0.1:9000/"
    assert redact("https://h.example/a/b?X-Signature=abc#x") == "https://h.example/a/b?…"
    assert redact("s3://bucket/reg#frag") == "s3://bucket/reg#…"  # a fragment, said so
    assert redact("https://h.example/hooks/T0K3N", path=False) == "https://h.example"
    assert redact("s3://bucket/team/models") == "s3://bucket/team/models"


@pytest.mark.parametrize(
    "junk", ["", "://", "@", "a@b@c", "\udcff@x", "::::", "http://[::1", "x" * 10_000]
)
def test_redact_takes_any_string_and_never_raises(junk: str) -> None:
    shown = redact(junk)
    assert isinstance(shown, str) and shown.isprintable()


def test_redact_of_what_it_cannot_read_is_a_placeholder_never_the_original() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError(SECRET)

    assert redact(Hostile()) == UNSHOWN


@pytest.mark.parametrize(("url", "_host"), LEAKY)
def test_a_url_whose_password_holds_a_delimiter_is_refused_without_it(url: str, _host: str) -> None:
    """Refused, one line, no password: as an http(s) URL without credentials, and also
    where credentials are allowed (a webhook) unless the URL is well-formed."""
    with pytest.raises(InvalidInputError) as info:
        check_url(url, "download URL")
    message = str(info.value)
    assert SECRET not in message and "\n" not in message and info.value.exit_code == 2
    assert message.startswith("download URL '")
    problem = url_problem(url, credentials=True)
    well_formed = url in (
        f"https://u:{SECRET}@host.example/",
        f"https://u:{SECRET}@at@host.example:8443/p?sig=x",
        f"HTTP://u:{SECRET}@[::1]:9/",
    )
    assert (problem is None) == well_formed, problem


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://x.example/a", "must be http:// or https:// with a host"),
        ("file:///tmp/m.npz", "must be http:// or https:// with a host"),
        ("not a url", "holds spaces or control characters"),
        ("", "is empty"),
        ("http://", "has no host"),
        ("http://host:99999/", "its port is not a number from 0 to 65535"),
        ("http://[::1/", "a malformed host"),
        ("http://u:1/pw@host/", "an '@' after its host"),
        ("http://u:pw@host/", "must not embed credentials"),
    ],
)
def test_url_problems_are_named(url: str, problem: str) -> None:
    found = url_problem(url)
    assert found is not None and problem in found


def test_well_formed_urls_pass_and_are_returned_as_shown() -> None:
    assert check_url("http://127.0.0.1:9000", "S3 endpoint URL") == "http://127.0.0.1:9000"
    assert check_url("https://h.example/m.npz?sig=1", "x") == "https://h.example/m.npz?…"
    assert url_problem("https://[::1]:8443/x") is None
    assert url_problem("https://u:p%2Fw@h.example/", credentials=True) is None  # encoded
    assert url_problem("tcp://h:8786", schemes=("tcp",)) is None
    assert url_problem("http://h:9000/", bare=True) is None
    for extra in ("/p", "?t=1", "/?t=1", "#f", "/p?t#f"):
        found = url_problem(f"http://h:9000{extra}", bare=True)
        assert found is not None and "must be http(s)://host[:port]" in found, extra
        assert url_problem(f"http://h:9000{extra}") is None
