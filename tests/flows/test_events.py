"""Registry events reach a real Prefect API (the session's temporary server), and cost
nothing where no API is configured."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.events import api_configured, flush, registry_listeners
from registry import Registry
from registry.events import ALIAS_MOVED, MODEL_PUBLISHED
from tests.registry.helpers import make_model

REPO = Path(__file__).resolve().parents[2]
EVENT_WAIT_SECONDS = 90  # the server ingests events in batches; a busy box is slow


def read_events(prefix: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )

    since = datetime.now(UTC) - timedelta(days=1)
    filt = EventFilter(
        occurred=EventOccurredFilter(since=since),  # type: ignore[arg-type]  # pydantic takes a datetime
        event=EventNameFilter(name=[MODEL_PUBLISHED, ALIAS_MOVED]),
        resource=EventResourceFilter(id_prefix=[prefix]),
    )
    with get_client(sync_client=True) as client:
        return list(client.read_events(filter=filt, limit=50).events)


def _publish_promote_rollback(root: str, cache: Path) -> str:
    """Three registry operations (5 events); returns the model's resource-id prefix."""
    listeners = registry_listeners()
    with Registry.open(root, cache_dir=cache, listeners=listeners) as reg:
        reg.publish(make_model(1), "digits", alias="champion")
        reg.publish(make_model(2), "digits", alias="champion")
        reg.rollback("digits", "champion")
    flush(listeners)  # what the CLI does once its work is done; a no-op inside a run
    return f"softmax-pipe.registry.{reg.uri}.model.digits"


@pytest.mark.slow
@pytest.mark.parametrize("store", ["local", "s3"])
@pytest.mark.parametrize("where", ["cli", "flow"])
def test_publish_promote_rollback_reach_prefect(
    prefect_harness: None, tmp_path: Path, where: str, store: str, request: pytest.FixtureRequest
) -> None:
    """From a command (held back, then sent at its end) and from a flow run (Prefect's
    background events worker), the same five events reach the API, from a folder registry
    and from one on the S3 server."""
    from prefect import flow

    assert api_configured()  # the harness sets PREFECT_API_URL in Prefect's settings
    if store == "s3":
        root = f"s3://{request.getfixturevalue('s3_bucket')}/events-registry"
    else:
        root = str(tmp_path / "events-registry")
    cache = tmp_path / "c"
    if where == "flow":
        prefix = flow(name="events-test")(_publish_promote_rollback)(root, cache)
    else:
        prefix = _publish_promote_rollback(root, cache)
    deadline = time.monotonic() + EVENT_WAIT_SECONDS
    got: list[Any] = []
    while time.monotonic() < deadline:
        got = read_events(prefix)
        if len(got) >= 5:
            break
        time.sleep(0.5)
    seen = sorted(
        (
            (e.event, e.payload.get("version"), e.payload.get("from"), e.payload.get("to"))
            for e in got
        ),
        key=repr,
    )
    assert seen == sorted(
        [
            (MODEL_PUBLISHED, 1, None, None),
            (MODEL_PUBLISHED, 2, None, None),
            (ALIAS_MOVED, None, None, 1),
            (ALIAS_MOVED, None, 1, 2),
            (ALIAS_MOVED, None, 2, 1),
        ],
        key=repr,
    ), f"events seen within {EVENT_WAIT_SECONDS} s: {seen}"
    moved = next(e for e in got if e.event == ALIAS_MOVED and e.payload["action"] == "rollback")
    assert moved.resource.id == f"{prefix}.alias.champion"
    assert moved.resource["softmax-pipe.alias"] == "champion"


def test_an_api_that_is_down_costs_one_warning_and_never_the_result(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from flows.events import PrefectEvents
    from registry.events import RegistryEvent

    listener = PrefectEvents()
    listener(RegistryEvent(ALIAS_MOVED, {"prefect.resource.id": "softmax-pipe.test"}))
    assert len(listener.pending) == 1  # outside a run: held for the end of the command
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}):
        started = time.monotonic()
        assert listener.flush(timeout=5.0) == 0
        assert time.monotonic() - started < 30  # bounded (the budget plus Prefect's import)
    assert listener.pending == []
    warnings = [r for r in caplog.records if "could not send 1 registry event" in r.message]
    assert len(warnings) == 1 and "the registry change itself is done" in warnings[0].message


def test_without_an_api_events_are_a_no_op_that_imports_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # no profile naming an API
    code = (
        "import json, sys\n"
        "from flows.events import registry_listeners\n"
        "from registry import Registry\n"
        "from tests.registry.helpers import make_model\n"
        f"reg = Registry.open({str(tmp_path / 'r')!r}, cache_dir={str(tmp_path / 'c')!r},"
        " listeners=registry_listeners())\n"
        "reg.publish(make_model(1), 'digits', alias='champion')\n"
        "print(json.dumps([len(reg.listeners), 'prefect' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout) == [0, False]


@pytest.mark.parametrize("where", ["env", "profile"])
def test_an_api_url_in_the_environment_or_the_profile_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    from flows import events

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    assert not events._profile_mentions_api_url()
    if where == "env":
        monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
        assert events.api_configured()
    else:
        (tmp_path / "profiles.toml").write_text(
            'active = "x"\n[profiles.x]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n'
        )
        assert events._profile_mentions_api_url()
