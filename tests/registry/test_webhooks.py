"""Signed outbound webhooks, against a real HTTP receiver on loopback that checks every
signature itself: each event once per delivery id, retries that repeat the same body, and
a dead receiver that costs one warning line and never the operation."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from registry import Registry, webhooks
from registry.events import Change, RegistryEvent
from registry.webhooks import Webhooks, body_of, shared, sign
from softmax_core import settings
from tests.cli_invoke import invoke
from tests.registry.helpers import make_model
from tests.webhook_receiver import dead_url, receiver

SECRET = "a-shared-secret-for-the-tests"
ROOT = Path(__file__).resolve().parents[2]


def operations(reg: Registry) -> None:
    """Publish (and promote), request, approve, rollback: one event of each kind."""
    reg.publish(make_model(1), "digits", alias="champion")
    reg.publish(make_model(2), "digits")
    reg.request("digits", 2, "champion", by="alice", comment="better")
    reg.approve("digits", 2, "champion", by="bob")
    reg.rollback("digits", "champion", by="bob", comment="too slow")


def test_each_event_is_posted_signed_once_per_delivery(tmp_path: Path) -> None:
    with receiver(SECRET) as got:
        hooks = Webhooks([got.url], SECRET)
        reg = Registry.open(str(tmp_path / "r"), cache_dir=tmp_path / "c", listeners=[hooks])
        operations(reg)
        assert hooks.flush(timeout=60)
    assert all(a.signed for a in got.attempts), "every POST carries the body's HMAC"
    assert all(a.path == "/hooks/models" for a in got.attempts)
    tries = got.deliveries()
    assert [len(t) for t in tries.values()] == [1] * 6  # no retry was needed
    events = got.events()
    assert [(e["type"], e["version"], e["from"], e["to"]) for e in events] == [
        ("publish", 1, None, None),
        ("promote", 1, None, 1),
        ("publish", 2, None, None),
        ("request", 2, 1, 2),
        ("approve", 2, 1, 2),
        ("rollback", 1, 2, 1),
    ]
    assert {e["delivery"] for e in events} == set(tries)  # the body names its delivery
    for e in events:
        assert e["registry"] == reg.uri and e["model"] == "digits"
        assert e["alias"] == (None if e["type"] == "publish" else "champion")
        assert datetime.fromisoformat(e["sent_at"]).tzinfo is not None  # refuse replays by it
        assert datetime.fromisoformat(e["at"]) <= datetime.fromisoformat(e["sent_at"])
        assert e["actor"]["identity"] == reg.store.identity().name
    request, approve, rollback = events[3:]
    assert (request["actor"]["by"], request["comment"], request["request"]) == (
        "alice",
        "better",
        1,
    )
    assert (approve["actor"]["by"], approve["request"]) == ("bob", 1)
    assert rollback["comment"] == "too slow"
    headers = got.attempts[0].headers
    assert headers["x-softmax-pipe-event"] == "publish"
    assert headers["content-type"] == "application/json"
    assert hooks.delivered == 6 and hooks.failed == 0


def test_an_event_sent_within_its_millisecond_is_not_sent_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``sent_at`` keeps the microseconds ``at`` has (seen once in the full suite: cut to
    the millisecond, a delivery made within the millisecond of its event was stamped
    .388 for an event at .388097)."""
    instant = datetime(2026, 12, 5, 17, 7, 58, 388097, tzinfo=UTC)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:
            return cls.fromtimestamp(instant.timestamp(), tz)

    monkeypatch.setattr(webhooks, "datetime", Frozen)
    change = Change("publish", "r", "digits", 1, None, None, None, None, instant.isoformat())
    with receiver(SECRET) as got:
        hooks = Webhooks([got.url], SECRET)
        hooks(RegistryEvent("softmax-pipe.model.published", {}, change=change))
        assert hooks.flush(timeout=60)
    (event,) = got.events()
    assert datetime.fromisoformat(event["at"]) <= datetime.fromisoformat(event["sent_at"])


@pytest.mark.slow
def test_a_failing_receiver_gets_the_same_body_again(tmp_path: Path) -> None:
    """500 to the first two attempts of each delivery: the third lands; every attempt of a
    delivery carries the very same bytes (and so the same id and time)."""
    with receiver(SECRET, fail_first=2) as got:
        hooks = Webhooks([got.url], SECRET, retry_seconds=30)
        reg = Registry.open(str(tmp_path / "r"), cache_dir=tmp_path / "c", listeners=[hooks])
        reg.publish(make_model(1), "digits", alias="champion")
        assert hooks.flush(timeout=60)
    tries = got.deliveries()
    assert [len(t) for t in tries.values()] == [3, 3]
    for attempts in tries.values():
        assert len({a.body for a in attempts}) == 1 and all(a.signed for a in attempts)
    assert [e["type"] for e in got.events()] == ["publish", "promote"]
    assert hooks.delivered == 2 and hooks.failed == 0


def test_two_receivers_each_get_every_event(tmp_path: Path) -> None:
    with receiver(SECRET) as one, receiver(SECRET) as two:
        config = settings.webhook_settings(
            {
                settings.ENV_WEBHOOK_URL: f" {one.url},{two.url} ",
                settings.ENV_WEBHOOK_SECRET: SECRET,
            }
        )
        hooks = Webhooks(config.urls, config.secret)
        reg = Registry.open(str(tmp_path / "r"), cache_dir=tmp_path / "c", listeners=[hooks])
        reg.publish(make_model(1), "digits", alias="champion")
        assert hooks.flush(timeout=60)
    for got in (one, two):
        assert [e["type"] for e in got.events()] == ["publish", "promote"]
    assert not set(one.deliveries()) & set(two.deliveries())  # a delivery id per receiver


def test_a_dead_receiver_costs_one_warning_line_and_never_the_operation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = dead_url()
    hooks = Webhooks([url], SECRET, retry_seconds=2.0)
    reg = Registry.open(str(tmp_path / "r"), cache_dir=tmp_path / "c", listeners=[hooks])
    with caplog.at_level(logging.WARNING, logger="registry.webhooks"):
        m = reg.publish(make_model(1), "digits", alias="champion")
        assert not hooks.flush(timeout=0)  # the operation returned; deliveries still trying
        assert hooks.flush(timeout=30)
    assert reg.resolve("digits@champion") == m
    lines = [r.getMessage() for r in caplog.records if r.name == "registry.webhooks"]
    assert len(lines) == 1, lines
    host = url.split("/hooks")[0]
    assert lines[0].startswith(
        f"webhook {host}: could not deliver publish digits:1 and 1 more (ConnectError: "
    ), lines[0]
    assert lines[0].endswith("; the registry change itself is done")
    assert "T0K3N" not in lines[0] and SECRET not in lines[0]  # host only, never the secret
    assert hooks.delivered == 0 and hooks.failed == 2


def test_a_refusal_is_final(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with receiver(SECRET, status=401) as got:
        hooks = Webhooks([got.url], SECRET)
        reg = Registry.open(str(tmp_path / "r"), cache_dir=tmp_path / "c", listeners=[hooks])
        with caplog.at_level(logging.WARNING, logger="registry.webhooks"):
            reg.publish(make_model(1), "digits")
            assert hooks.flush(timeout=30)
    assert len(got.attempts) == 1  # 401: not retried
    (line,) = [r.getMessage() for r in caplog.records if r.name == "registry.webhooks"]
    assert "could not deliver publish digits:1 (HTTP 401, not retried)" in line


def test_settings_read_urls_and_keep_the_secret_out_of_sight() -> None:
    config = settings.webhook_settings(
        {settings.ENV_WEBHOOK_URL: "https://a.example/x, https://b.example/y  https://c.example/z"}
    )
    assert config.urls == ("https://a.example/x", "https://b.example/y", "https://c.example/z")
    assert config.secret is None
    assert settings.webhook_settings({}).urls == ()
    config = settings.webhook_settings(
        {settings.ENV_WEBHOOK_URL: "https://a.example/T0K3N", settings.ENV_WEBHOOK_SECRET: SECRET}
    )
    assert SECRET not in repr(config) and config.secret == SECRET
    hooks = Webhooks(config.urls, config.secret)
    assert repr(hooks) == "Webhooks(https://a.example)"  # no path, no secret
    assert shared(settings.webhook_settings({})) is None
    assert shared(config) is shared(config)  # one per process: flows' tasks share it


def test_bad_urls_and_a_missing_secret_are_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="registry.webhooks"):
        hooks = Webhooks(["ftp://x.example/a", "not a url", "http://ok.example/h"], None)
    assert hooks.urls == ("http://ok.example/h",)
    lines = [r.getMessage() for r in caplog.records]
    assert sum("skipped (SOFTMAX_PIPE_WEBHOOK_URL): it " in line for line in lines) == 2
    assert any("webhooks go out unsigned" in line for line in lines)


HOOK_PASSWORD = "Sup3rS3cretPart"
MALFORMED_HOOK = f"https://hookuser:{HOOK_PASSWORD}/Rest@hooks.example.com/T0KEN"  # '/' in it


def test_a_url_whose_password_holds_a_slash_is_skipped_without_showing_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """urlsplit reads the password's head as a port (a ValueError quoting it): skipped
    with one warning naming scheme and host only, never a crash."""
    with caplog.at_level(logging.WARNING, logger="registry.webhooks"):
        hooks = Webhooks([MALFORMED_HOOK, "http://ok.example/h"], SECRET)
    assert hooks.urls == ("http://ok.example/h",)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("webhook URL 'https://hooks.example.com' skipped (")
    assert "%2F" in line  # how to write it instead
    for hidden in (HOOK_PASSWORD, "Rest", "T0KEN", "hookuser"):
        assert hidden not in line
    assert webhooks.shown(MALFORMED_HOOK) == "https://hooks.example.com"
    assert repr(Webhooks([MALFORMED_HOOK], SECRET)) == "Webhooks()"


def test_cli_writes_go_on_while_a_malformed_webhook_url_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every registry write used to crash (exit 70, the password in its line) while such
    a URL was set; now the write is done, and stderr never holds the password."""
    monkeypatch.setenv(settings.ENV_WEBHOOK_URL, MALFORMED_HOOK)
    monkeypatch.setenv(settings.ENV_WEBHOOK_SECRET, SECRET)
    make_model(1).save(tmp_path / "m.npz")
    where = ("--registry", tmp_path / "r", "--cache-dir", tmp_path / "c")
    for args in (
        ("registry", "publish", tmp_path / "m.npz", "--name", "mnist"),
        ("registry", "promote", "mnist:1", "staging3"),
    ):
        code, out, err = invoke(*args, *where)
        assert code == 0, err
        for hidden in (HOOK_PASSWORD, "Rest", "T0KEN", SECRET):
            assert hidden not in err and hidden not in out
    assert (
        Registry.open(str(tmp_path / "r"), cache_dir=tmp_path / "c")
        .resolve("mnist@staging3")
        .version
        == 1
    )


def test_the_readme_receiver_accepts_each_delivery_once(tmp_path: Path) -> None:
    """The README's receiver, run as written, on bodies that really arrived: accepted once,
    refused when replayed, tampered with, or old."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Webhooks\n", 1)[1].split("\n### ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    scope: dict[str, Any] = {}
    exec(compile(block, "README.md (Webhooks)", "exec"), scope)
    accept = scope["accept"]
    with receiver(SECRET) as got:
        hooks = Webhooks([got.url], SECRET)
        reg = Registry.open(str(tmp_path / "r"), cache_dir=tmp_path / "c", listeners=[hooks])
        reg.publish(make_model(1), "digits", alias="champion")
        assert hooks.flush(timeout=60)
    seen: set[str] = set()
    first = got.attempts[0]
    signature = first.headers["x-softmax-pipe-signature"]
    assert accept(SECRET.encode(), first.body, signature, seen)["type"] == "publish"
    assert accept(SECRET.encode(), first.body, signature, seen) is None  # the same delivery
    tampered = first.body.replace(b'"digits"', b'"digits2"')
    assert accept(SECRET.encode(), tampered, signature, set()) is None
    old = json.loads(first.body)
    old["sent_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    stale = json.dumps(old).encode()
    assert accept(SECRET.encode(), stale, sign(SECRET, stale), set()) is None
    fresh = dict(old, sent_at=datetime.now(UTC).isoformat(), delivery="another")
    body = json.dumps(fresh).encode()
    assert accept(SECRET.encode(), body, sign(SECRET, body), set()) is not None


def test_the_signature_is_hmac_sha256_of_the_raw_body() -> None:
    from registry.events import published
    from registry.manifest import Manifest

    manifest = Manifest(
        "digits", 3, "a" * 64, "2026-01-01T00:00:00+00:00", None, {}, {}, {}, {}, None, {}
    )
    body = body_of(published("s3://b/r", manifest), "d" * 32, "2026-01-01T00:00:01+00:00")
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body) == expected
    assert json.loads(body)["type"] == "publish" and b" " not in body  # compact JSON


# --- the CLI: flushes after its output ----------------------------------------------------


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "softmax-pipe"
    return subprocess.run(
        [str(exe), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SOFTMAX_PIPE_", "PREFECT_API"))
    }
    env.update(
        {
            settings.ENV_WEBHOOK_URL: url,
            settings.ENV_WEBHOOK_SECRET: SECRET,
            settings.ENV_REGISTRY: str(tmp_path / "r"),
            settings.ENV_CACHE: str(tmp_path / "c"),
            "PREFECT_HOME": str(tmp_path / "prefect"),  # no profile naming an API
        }
    )
    return env


@pytest.mark.slow
def test_a_cli_publish_posts_a_body_whose_signature_verifies(tmp_path: Path) -> None:
    make_model(1).save(tmp_path / "m.npz")
    with receiver(SECRET) as got:
        args = ("registry", "publish", "m.npz", "--name", "digits", "--alias", "champion")
        done = _cli(*args, env=_env(tmp_path, got.url), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert [(e["type"], e["version"]) for e in got.events()] == [("publish", 1), ("promote", 1)]
    assert all(a.signed for a in got.attempts)


@pytest.mark.slow
def test_a_cli_publish_to_a_dead_receiver_exits_0_with_one_warning_line(tmp_path: Path) -> None:
    make_model(1).save(tmp_path / "m.npz")
    url = dead_url()
    done = _cli(
        "registry", "publish", "m.npz", "--name", "digits", env=_env(tmp_path, url), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("published digits:1  sha256:")
    (line,) = done.stderr.splitlines()
    host = url.split("/hooks")[0]
    assert line.startswith(f"webhook {host}: could not deliver publish digits:1 (ConnectError")
    assert "T0K3N" not in done.stderr and SECRET not in done.stderr
