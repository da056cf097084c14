"""flows.runner: what `softmax-pipe run` and `score --flow` stand on.

Inputs are checked before any Prefect server is asked or started; an API that does not
answer, or a temporary server that does not start in its budget, is one line and exit 4;
SIGTERM leaves no temporary server behind. The processes here are real: a Python driver
calls :func:`flows.runner.run_training` as the CLI does, with no PREFECT_API_URL.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prefect.states import Cancelled, Completed, Failed

from flows import runner
from flows.records import Published, PublishLog
from registry import Registry
from softmax_core.errors import (
    DataNotFoundError,
    GateFailedError,
    InvalidInputError,
    InvalidNameError,
    ModelNotFoundError,
    PipelineError,
    ServiceUnavailableError,
)
from softmax_core.requests import (
    Data,
    Gate,
    Hyper,
    Location,
    Retries,
    Target,
    TrainingRequest,
)
from tests.flows.prefect_stack import free_port, wait_until
from tests.registry.helpers import make_model
from tests.training_runs import training_request

# Calls run_training as softmax-pipe run does, on the request given as JSON (the nested
# form a deployment's parameters take); prints the error line the CLI would print.
DRIVER = """
import json, sys
from pydantic import TypeAdapter
from flows.runner import run_training
from softmax_core.errors import SoftmaxPipeError
from softmax_core.requests import TrainingRequest
request = TypeAdapter(TrainingRequest).validate_python(json.loads(sys.argv[1]))
timeout = int(sys.argv[2]) if len(sys.argv) > 2 else None
try:
    summary = run_training(request, startup_timeout=timeout)
except SoftmaxPipeError as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(e.exit_code)
except KeyboardInterrupt:
    sys.exit(130)
print(json.dumps(summary.to_json()))
"""


def _user_env(tmp_path: Path) -> dict[str, str]:
    """A user's shell: no Prefect API or server settings, a private PREFECT_HOME."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_API_", "PREFECT_SERVER_", "PREFECT_LOGGING_"))
    }
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    return env


def _request(mnist_dir: Path, cache: Path, tmp_path: Path, **parts: Any) -> TrainingRequest:
    """A training request on real MNIST into ``tmp_path/reg`` (``parts``: hyper, gate...)."""
    return training_request(mnist_dir, cache, tmp_path / "reg", **parts)


def _as_json(request: TrainingRequest) -> str:
    """The request as the driver reads it: JSON, nested as a deployment's parameters are."""
    return json.dumps(dataclasses.asdict(request))


@pytest.fixture
def restore_prefect_logging() -> Iterator[None]:
    """Undo quiet_prefect_logging for the rest of the session."""
    saved = {k: os.environ.get(k) for k in runner.QUIET_LOGGING}
    yield
    from prefect.logging.configuration import setup_logging

    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    setup_logging()


# --- fail fast: before any server --------------------------------------------------------------


# Each builds a request as the CLI would (the MNIST folder, the registry's location):
# refused when it is built (a bad name, alias or number) or when run_training prepares it
# (a source, an inbox folder or a dataset that does not exist, a registry URI that does
# not parse, an inbox that is no labelled folder).
BadRequest = Callable[[str, Location], TrainingRequest]
BAD_REQUESTS: list[tuple[BadRequest, type[Exception], str]] = [
    (
        lambda mnist, where: TrainingRequest(
            data=Data(source="/no/such/mnist"), target=Target(location=where)
        ),
        DataNotFoundError,
        "/no/such/mnist",
    ),
    (
        lambda mnist, where: TrainingRequest(
            data=Data(source=mnist),
            target=Target(location=dataclasses.replace(where, registry="s3://")),
        ),
        InvalidNameError,
        "names no bucket",
    ),
    (
        lambda mnist, where: TrainingRequest(
            data=Data(source=mnist), target=Target(location=where, name="../evil")
        ),
        InvalidNameError,
        "../evil",
    ),
    (
        lambda mnist, where: TrainingRequest(
            data=Data(source=mnist), target=Target(location=where, alias="a/b")
        ),
        InvalidNameError,
        "a/b",
    ),
    (
        lambda mnist, where: TrainingRequest(
            data=Data(source=mnist), target=Target(location=where), retries=Retries(io_retries=-1)
        ),
        InvalidInputError,
        "io_retries=-1",
    ),
    (  # a mistyped folder was no inbox "yet": the run trained on MNIST alone and published
        lambda mnist, where: TrainingRequest(
            data=Data(source=mnist, inbox="/no/such/inbox"), target=Target(location=where)
        ),
        DataNotFoundError,
        "inbox /no/such/inbox does not exist",
    ),
    (  # MNIST's folder: files at the top level, not class folders
        lambda mnist, where: TrainingRequest(
            data=Data(source=mnist, inbox=mnist), target=Target(location=where)
        ),
        InvalidInputError,
        "unexpected file at the top level",
    ),
    (  # an address no store reads: refused after the server started, ~10 s later
        lambda mnist, where: TrainingRequest(
            data=Data(source=mnist, inbox="file:///no/such/inbox"), target=Target(location=where)
        ),
        InvalidInputError,
        "only s3://bucket/key addresses are supported",
    ),
    (
        lambda mnist, where: TrainingRequest(
            data=Data(source=mnist, datasets=("nosuch",)), target=Target(location=where)
        ),
        ModelNotFoundError,
        "no dataset named 'nosuch'",
    ),
]


@pytest.mark.parametrize(
    ("build", "error", "message"),
    BAD_REQUESTS,
    ids=[
        "missing-source",
        "registry-uri",
        "model-name",
        "alias",
        "io-retries",
        "missing-inbox",
        "inbox-layout",
        "inbox-address",
        "missing-dataset",
    ],
)
def test_bad_input_fails_before_any_prefect_server(
    mnist_dir: Path,
    session_cache: Path,
    tmp_path: Path,
    restore_prefect_logging: None,
    build: BadRequest,
    error: type[Exception],
    message: str,
) -> None:
    said: list[str] = []
    where = Location(registry=str(tmp_path / "reg"), cache_dir=str(session_cache))
    with pytest.raises(error, match=re.escape(message)):
        runner.run_training(build(str(mnist_dir), where), say=said.append)
    assert said == []  # the temporary-server line comes only after the inputs are checked
    assert not (tmp_path / "reg").exists()


# --- the Prefect API ----------------------------------------------------------------------------


def test_unreachable_api_is_service_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    with pytest.raises(ServiceUnavailableError, match=r"127\.0\.0\.1.*prefect server start") as e:
        runner.check_server(url, timeout=5.0)
    assert e.value.exit_code == 4


def test_api_url_is_required_for_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings(restore_defaults={PREFECT_API_URL}),
        pytest.raises(InvalidInputError, match=r"PREFECT_API_URL is not set.*prefect server start"),
    ):
        runner.api_url()


@pytest.mark.slow
def test_run_training_against_the_api(
    prefect_harness: None,
    mnist_dir: Path,
    session_cache: Path,
    tmp_path: Path,
    restore_prefect_logging: None,
) -> None:
    """With a server configured (the harness): health-checked, no temporary-server line."""
    runner.check_server(runner.api_url())
    said: list[str] = []
    request = _request(mnist_dir, session_cache, tmp_path, hyper=Hyper(epochs=1))
    summary = runner.run_training(request, say=said.append)
    assert isinstance(summary, Published)
    assert summary.ref == "mnist:1" and summary.promoted == "champion"
    assert runner.TEMPORARY_SERVER_NOTE not in said  # what it said: a cold cache's steps
    strict = dataclasses.replace(request, gate=Gate(min_accuracy=0.999))
    with pytest.raises(GateFailedError, match="below the floor"):
        runner.run_training(strict, say=said.append)


def test_session_maps_http_failures_to_service_unavailable(
    prefect_harness: None, restore_prefect_logging: None
) -> None:
    with (
        pytest.raises(ServiceUnavailableError, match=r"ReadTimeout.*PREFECT_API_URL"),
        runner.prefect_session(say=print),
    ):
        raise httpx.ReadTimeout("timed out")


@pytest.mark.parametrize(
    ("detail", "line"),
    [
        ("", "did not start within 7 s (a busy machine?); raise PREFECT_SERVER_EPHEMERAL"),
        (" Ephemeral server process exited with code 1.", "exited with code 1 before it"),
    ],
)
def test_session_names_why_the_temporary_server_did_not_answer(
    prefect_harness: None, restore_prefect_logging: None, detail: str, line: str
) -> None:
    prefect = "Timed out while attempting to connect to ephemeral Prefect API server."
    with (
        pytest.raises(ServiceUnavailableError, match=re.escape(line)) as e,
        runner.prefect_session(startup_timeout=7),
    ):
        raise RuntimeError(prefect + detail)
    assert "`prefect server start` and set PREFECT_API_URL" in str(e.value)
    with pytest.raises(RuntimeError, match="unrelated"), runner.prefect_session():
        raise RuntimeError("unrelated")


def test_startup_budget_must_be_whole_seconds(prefect_harness: None) -> None:
    with (
        pytest.raises(InvalidInputError, match="startup_timeout=0"),
        runner.prefect_session(startup_timeout=0),
    ):
        pass


# Prefect 3's task engine, stopped by the signal while it sets a task run up, can swallow
# the KeyboardInterrupt and fail the flow with its own error ("Task run is not set": seen
# once, SIGTERM under load, tests/cli/test_run_signals.py). The flow here stands in for
# that moment: the signal arrives, the interrupt is swallowed, the run fails otherwise.
SWALLOWED = """
import json, os, signal, sys, time
from pydantic import TypeAdapter
from prefect.states import Failed
import flows.training
from flows.runner import run_training
from softmax_core.requests import TrainingRequest

def pipeline(**parts):
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler raises in here
    except KeyboardInterrupt:
        pass
    return Failed(data=ValueError("Task run is not set"))

flows.training.training_pipeline = pipeline
request = TypeAdapter(TrainingRequest).validate_python(json.loads(sys.argv[1]))
try:
    run_training(request)
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
except Exception as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(70)
"""


def test_a_run_that_fails_after_the_signal_is_interrupted(
    prefect_harness: None, mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    env = {**_user_env(tmp_path), "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    request = _as_json(_request(mnist_dir, session_cache, tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", SWALLOWED, request],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 130, done.stderr
    assert "ValueError" not in done.stderr and "not waiting for Prefect" not in done.stderr


# The real moment (issue: SIGTERM during `run`, exit 70 in 2 of 7 tries): Prefect's own
# SIGTERM handler, installed by the flow engine, raises TerminationSignal while the task
# engine creates publish-report's task run; its crash handling then raises ValueError
# ("Task run is not set") instead, the flow fails with it, and our handler never hears of
# the signal. Here the signal is sent at exactly that point of the real training flow,
# and, for the other way it ends, once publish-report runs; and inside reg.publish once
# the manifest is written (the version is there), as it checks the blob: the run said
# nothing of the version it kept; and inside reg.promote once the alias record is written,
# before its history entry: the run said nothing of the alias it had moved.
TERMINATED_ONCE_PUBLISHED = """
import json, os, signal, sys, time
from pydantic import TypeAdapter
import prefect.task_engine as engine
from flows.runner import run_training
from registry.local import LocalStore
from softmax_core.errors import Interrupted
from softmax_core.requests import TrainingRequest

import softmax_core.report

def signal_first(make, when):
    def made(*args, **kwargs):
        if when(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # Prefect's handler raises in here
        return make(*args, **kwargs)
    return made

import registry.aliases
create, draw, head = engine._create_task_run_locally, softmax_core.report.render_report, LocalStore.head
logged = registry.aliases._ensure_logged
if sys.argv[2] == "making its task run":
    engine._create_task_run_locally = signal_first(
        create, lambda *args, **kwargs: kwargs["task"].name == "publish-report"
    )
elif sys.argv[2] == "running":  # the task's own code
    softmax_core.report.render_report = signal_first(draw, lambda *args, **kwargs: True)
elif sys.argv[2] == "moving":  # inside reg.promote: the record written, then its history
    registry.aliases._ensure_logged = signal_first(logged, lambda store, record: True)
else:  # inside reg.publish: the manifest written, the blob checked after it
    LocalStore.head = signal_first(head, lambda store, key: key.startswith("blobs/"))
request = TypeAdapter(TrainingRequest).validate_python(json.loads(sys.argv[1]))
try:
    run_training(request)
except KeyboardInterrupt as e:
    print(f"interrupted {e.done}" if isinstance(e, Interrupted) else "interrupted", file=sys.stderr)
    sys.exit(130)
except BaseException as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(70)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("moment", "action", "said"),
    [
        ("making its task run", "promote", "; intr6@champion -> intr6:1"),
        ("running", "publish", ""),  # no alias to move: nothing said of one
        ("publishing", "promote", "; intr6@champion not moved"),
        ("moving", "promote", "; intr6@champion -> intr6:1"),
        ("running", "request", "; intr6@champion -> intr6:1 requested (request #1)"),
    ],
)
def test_sigterm_once_published_is_an_interrupt_naming_what_was_published(
    prefect_harness: None,
    mnist_dir: Path,
    session_cache: Path,
    tmp_path: Path,
    moment: str,
    action: Any,
    said: str,
) -> None:
    """The line names the version kept and, when the run was to move an alias, whether
    it did (``registry history`` showed the move the line did not), or the request it
    wrote for an approver (the line said nothing of it)."""
    from prefect.settings import PREFECT_API_URL

    env = {**_user_env(tmp_path), "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    request = _request(
        mnist_dir, session_cache, tmp_path, hyper=Hyper(epochs=1),
        target=Target(name="intr6", action=action),
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", TERMINATED_ONCE_PUBLISHED, _as_json(request), moment],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines()[-1] == f"interrupted after publishing intr6:1{said}"
    alias = tmp_path / "reg" / "models" / "intr6" / "aliases" / "champion.json"
    assert alias.is_file() == said.endswith("-> intr6:1"), done.stderr
    assert (tmp_path / "reg" / "models" / "intr6" / "versions" / "00000001.json").is_file()


def test_the_interrupted_line_says_what_was_written_once(tmp_path: Path) -> None:
    """What ``PublishLog`` says of a run cut short, fed by the registry's ``committed``
    callbacks as the tasks feed it; and the version a retried publish finishes."""
    log = PublishLog()
    mark = log.mark()
    with Registry.open(str(tmp_path / "reg"), cache_dir=tmp_path / "c") as reg:
        m = reg.publish(make_model(1), "m", committed=lambda v: log.note(v, task_run="t1"))
        assert log.said(mark, moving="m@champion") == "after publishing m:1; m@champion not moved"
        for _ in range(2):  # asked again: the open request stands, written and noted once
            reg.request("m", 1, "champion", committed=lambda r: log.note_request("m@champion", r))
        assert log.said(mark) == "after publishing m:1; m@champion -> m:1 requested (request #1)"
        assert log.claimed_by("t1") == m and log.claimed_by("t2") is log.claimed_by(None) is None
        later = log.mark()
        reg.publish(make_model(2), "m", committed=log.note)
    assert log.said(later) == "after publishing m:2"


def test_result_of_final_states() -> None:
    assert runner.result_of(Completed(data={"ref": "m:1"})) == {"ref": "m:1"}
    with pytest.raises(GateFailedError, match="refused"):
        runner.result_of(Failed(data=GateFailedError("refused")))
    with pytest.raises(PipelineError, match="ended CANCELLED without a result: stopped") as e:
        runner.result_of(Cancelled(message="stopped by a user"))
    assert e.value.exit_code == 6


# --- a temporary server, for real ---------------------------------------------------------------


@pytest.mark.slow
def test_temporary_server_too_slow_to_start_is_one_line_exit_4(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    """A 1 s budget cannot be met: exit 4, the cause and the fix, no traceback or log wall."""
    request = _request(mnist_dir, session_cache, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, _as_json(request), "1"],
        env=_user_env(tmp_path), capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == runner.TEMPORARY_SERVER_NOTE, proc.stderr
    assert lines[1].startswith(
        "ServiceUnavailableError: the temporary Prefect server did not start within 1 s"
    ), proc.stderr
    assert "`prefect server start` and set PREFECT_API_URL" in lines[1]
    assert len(lines) == 2, proc.stderr  # no traceback, no Prefect INFO lines
    assert not (tmp_path / "reg").exists()


def _server(driver: psutil.Process) -> psutil.Process | None:
    """The driver's temporary server (``python -m uvicorn ... --port N``), once it runs."""
    for child in driver.children(recursive=True):
        try:
            cmd = child.cmdline()
        except psutil.Error:
            continue
        if "uvicorn" in cmd and "--port" in cmd:
            return child
    return None


def _port(server: psutil.Process) -> int:
    cmd = server.cmdline()
    return int(cmd[cmd.index("--port") + 1])


@pytest.mark.slow
def test_temporary_server_run_is_quiet_and_publishes(
    mnist_dir: Path, session_cache: Path, tmp_path: Path
) -> None:
    """No PREFECT_API_URL: one line about the temporary server, no Prefect log lines."""
    request = _request(mnist_dir, session_cache, tmp_path, hyper=Hyper(epochs=1))
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, _as_json(request)],
        env=_user_env(tmp_path), capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == runner.TEMPORARY_SERVER_NOTE, proc.stderr
    # then only what a cold cache prepares (none when warm), never a Prefect log line
    prefect_log = re.compile(r"\| (DEBUG|INFO|WARNING|ERROR) +\||Flow run|Task run")
    assert not [line for line in lines if prefect_log.search(line)], proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["ref"] == "mnist:1" and summary["promoted"] == "champion"
    assert (tmp_path / "prefect-home" / "prefect.db").is_file()  # the run is recorded


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _training(port: int) -> bool:
    """True once the driver's flow run is Running on its temporary server."""
    try:
        runs = httpx.post(f"http://127.0.0.1:{port}/api/flow_runs/filter", json={}, timeout=5)
    except httpx.HTTPError:
        return False
    return runs.status_code == 200 and any(r["state_type"] == "RUNNING" for r in runs.json())


@pytest.mark.slow
@pytest.mark.parametrize("when", ["starting", "training"])
def test_sigterm_leaves_no_temporary_server_behind(
    mnist_dir: Path, session_cache: Path, tmp_path: Path, when: str
) -> None:
    """SIGTERM while the server starts, or while the flow runs: exit 130, no child left."""
    request = _request(mnist_dir, session_cache, tmp_path, hyper=Hyper(epochs=50))
    with (tmp_path / "driver.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER, _as_json(request)],
            env=_user_env(tmp_path), stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
            start_new_session=True,
        )  # fmt: skip
    driver = psutil.Process(proc.pid)
    try:
        server = wait_until("the temporary server's process", lambda: _server(driver), 240)
        port = _port(server)
        settings = server.environ()  # what the session gave the server: room, no telemetry
        assert settings["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "180"
        assert settings["PREFECT_SERVER_ANALYTICS_ENABLED"] == "False"
        assert settings["PREFECT_SERVER_LOGGING_LEVEL"] == "CRITICAL"
        if when == "training":
            wait_until("the flow run to be Running", lambda: _training(port), 240)
        children = driver.children(recursive=True)
        assert children
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 130, (tmp_path / "driver.log").read_text()
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [p.cmdline() for p in alive]
        assert not _healthy(port)
    finally:
        for p in [driver, *driver.children(recursive=True)] if driver.is_running() else []:
            p.kill()
        proc.wait(timeout=30)
