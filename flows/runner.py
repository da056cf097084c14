"""Running a flow from the command line: the Prefect API, its temporary server, quiet logs.

The CLI calls one function per command and prints what it returns:

- :func:`run_training` (``softmax-pipe run``): check every input first, then run the
  training flow and return its summary, or raise the error that failed it;
- :func:`run_scoring` (``softmax-pipe score --flow``): the batch-scoring flow, the same way.

Both run inside :func:`prefect_session`:

- With ``PREFECT_API_URL`` set, that server's health is checked first (the Prefect
  client's ``api_healthcheck``, which honours Prefect's auth and TLS settings).
  Without it Prefect starts a temporary local server for the run; the session says so
  in one line and gives it :data:`SERVER_STARTUP_TIMEOUT` seconds to start (Prefect's
  own default, 20 s, is too short for a busy laptop), raised by ``startup_timeout`` or
  Prefect's own ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``. The temporary
  server sends no telemetry (its heartbeat's writes raced the run's on SQLite:
  "database is locked" tracebacks).
- Prefect's console log lines are kept off the terminal through Prefect's logging
  settings (``PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL``, set before Prefect is imported);
  they still reach the server, so the UI shows them. ``verbose`` keeps them on.
- An unreachable API, or a temporary server that does not start, is a
  :class:`~softmax_core.errors.ServiceUnavailableError` (exit 4) naming the fix; a flow
  run that ends without a result is a :class:`~softmax_core.errors.PipelineError`.
- The temporary server is started by the session, in a session of its own, with a guard
  that stops it should the CLI die (even by SIGKILL): :mod:`flows.temporary_server`.
- SIGINT and SIGTERM, to the process or to its whole group (a terminal's Ctrl-C,
  ``timeout``, a container stop), raise ``KeyboardInterrupt`` while the session lasts:
  Prefect marks the run crashed on the server, which the signal did not reach, and the
  CLI exits 130. During a flow run SIGTERM goes to Prefect's own handler; a run it
  failed with another error is still interrupted (:func:`result_of`). A run interrupted
  once its version was published says so (:class:`~softmax_core.errors.Interrupted`,
  from ``flows.records.PUBLISHED``): the version stays; and, when it was to move an
  alias, whether it did (``mnist@champion -> mnist:4``, or ``mnist@champion not
  moved``), and a request written for an approver (``mnist@champion -> mnist:4
  requested (request #2)``). Should that not end the run within
  :data:`flows.temporary_server.INTERRUPT_DEADLINE` seconds, or at a second Ctrl-C, the
  process stops the server and exits 130 at once.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from softmax_core.errors import (
    Interrupted,
    InvalidInputError,
    PipelineError,
    ServiceUnavailableError,
)
from softmax_core.urls import redact

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

    from flows.records import RunSummary
    from softmax_core.requests import ScoringRequest, TrainingRequest
    from softmax_core.scoring import ScoreSummary

#: seconds a temporary Prefect server may take to start (a busy 2-core laptop took 70)
SERVER_STARTUP_TIMEOUT = 180
#: seconds one Prefect API request may take (Prefect's default: 60)
API_REQUEST_TIMEOUT = 120
#: seconds a temporary server's database statement may wait, e.g. for SQLite's lock (10)
DATABASE_TIMEOUT = 60
HEALTH_TIMEOUT = 10.0  # seconds for the health check of a configured server
TEMPORARY_SERVER_NOTE = (
    "prefect: no PREFECT_API_URL configured; using a temporary local Prefect server "
    "for this run (set PREFECT_API_URL to use a running server)"
)
START_A_SERVER = (
    "start one with `prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api"
)
#: Prefect's logging settings that keep its console quiet (read when Prefect sets up logging)
QUIET_LOGGING = {
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",  # the temporary server's own lines
}
_EPHEMERAL_TIMEOUT = "Timed out while attempting to connect to ephemeral Prefect API server"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- the Prefect API --------------------------------------------------------------------------


def api_url() -> str:
    """The configured ``PREFECT_API_URL``; a usage error when there is none.

    For ``serve`` and ``deploy``: without a server, Prefect would start a temporary one
    with no scheduler, and nothing would ever run on the schedule.
    """
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise InvalidInputError(
            f"PREFECT_API_URL is not set; expected a running Prefect server: {START_A_SERVER}"
        )
    return str(url)


def check_server(url: str, timeout: float = HEALTH_TIMEOUT) -> None:
    """ServiceUnavailableError (exit 4) unless the Prefect API at ``url`` answers ``/health``."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings(updates={PREFECT_API_URL: url}),
        get_client(httpx_settings={"timeout": timeout}, sync_client=True) as client,
    ):
        failure = client.api_healthcheck()
    if failure is not None:
        raise ServiceUnavailableError(
            f"the Prefect server at {redact(url)} is unreachable "
            f"({type(failure).__name__}: {failure}); "
            f"check PREFECT_API_URL, or {START_A_SERVER}"
        )


# --- the session ------------------------------------------------------------------------------


def quiet_prefect_logging(verbose: bool = False) -> None:
    """Keep Prefect's console log lines off the terminal for the rest of this process.

    Sets Prefect's own logging settings (unless the user set them); call it before Prefect
    is imported. Should Prefect's logging be set up already, it is set up again, so the
    settings still apply. ``verbose``: leave Prefect's logging as it is.
    """
    if verbose:
        return
    for key, value in QUIET_LOGGING.items():
        os.environ.setdefault(key, value)
    if "prefect" in sys.modules:
        from prefect.logging.configuration import setup_logging

        setup_logging()


def _prefect_settings(startup_timeout: int | None) -> dict[str, dict[Any, Any]]:
    """``temporary_settings`` keywords: our defaults (the user's settings win), the flag."""
    from prefect.settings import (
        PREFECT_API_REQUEST_TIMEOUT,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_DATABASE_TIMEOUT,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    )

    defaults: dict[Any, Any] = {
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: SERVER_STARTUP_TIMEOUT,
        PREFECT_API_REQUEST_TIMEOUT: API_REQUEST_TIMEOUT,
        PREFECT_SERVER_DATABASE_TIMEOUT: DATABASE_TIMEOUT,
        PREFECT_SERVER_ANALYTICS_ENABLED: False,
    }
    updates: dict[Any, Any] = {}
    if startup_timeout is not None:
        if not (isinstance(startup_timeout, int) and startup_timeout >= 1):
            raise InvalidInputError(
                f"startup_timeout={startup_timeout!r} is invalid; expected whole seconds >= 1"
            )
        updates[PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS] = startup_timeout
    return {"set_defaults": defaults, "updates": updates}


@contextmanager
def prefect_session(
    *,
    verbose: bool = False,
    startup_timeout: int | None = None,
    say: Callable[[str], None] = _stderr,
) -> Iterator[None]:
    """Where a flow runs from the CLI: quiet logs, a checked API or a temporary server
    (started here, in a session of its own and guarded: :mod:`flows.temporary_server`),
    and SIGINT / SIGTERM as KeyboardInterrupt, bounded in time.

    Raises ServiceUnavailableError when the API is unreachable or the temporary server
    does not start within its budget; KeyboardInterrupt for whatever fails once the run
    was interrupted (a Prefect API that went away with the signal is not the cause).
    """
    import httpx

    from flows.temporary_server import Interrupts, start_server

    quiet_prefect_logging(verbose)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    options = _prefect_settings(startup_timeout)
    url = PREFECT_API_URL.value()
    if url:
        check_server(str(url))
    else:
        say(TEMPORARY_SERVER_NOTE)
    with (
        Interrupts(say) as interrupts,
        temporary_settings(**options) as current,
        _preparation_said(say, verbose=verbose),
    ):
        try:
            if not url:
                start_server(interrupts)
            yield
        except Exception as e:
            if interrupts.received is not None:
                raise KeyboardInterrupt(f"signal {interrupts.received}") from e
            if isinstance(e, RuntimeError) and _EPHEMERAL_TIMEOUT in str(e):
                budget = current.server.ephemeral.startup_timeout_seconds
                raise _not_started(str(e), budget) from None
            if isinstance(e, httpx.HTTPError):
                raise ServiceUnavailableError(
                    f"the Prefect API at {url or 'the temporary server'} failed "
                    f"({type(e).__name__}: {e}); check PREFECT_API_URL, or {START_A_SERVER}"
                ) from e
            raise


class _Preparing(logging.Handler):
    """Says the lines a task marks as preparation (``flows._common.preparing``)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__()
        self.say = say

    def emit(self, record: logging.LogRecord) -> None:
        from flows._common import PREPARING

        if getattr(record, PREPARING, False):
            self.say(record.getMessage())


@contextmanager
def _preparation_said(say: Callable[[str], None], *, verbose: bool) -> Iterator[None]:
    """While the session lasts, the tasks' preparation lines (a first run's minute of
    features, cluttered digits and non-digits) go to ``say``, as ``train`` prints them;
    ``verbose`` shows Prefect's whole log already."""
    if verbose:
        yield
        return
    logger, handler = logging.getLogger("prefect.task_runs"), _Preparing(say)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _not_started(message: str, budget: int) -> ServiceUnavailableError:
    """The one line for a temporary server that did not answer: it exited, or it was slow."""
    exited = re.search(r"process exited with code (-?\d+)", message)
    if exited:
        return ServiceUnavailableError(
            f"the temporary Prefect server exited with code {exited[1]} before it answered; "
            "check that PREFECT_HOME can be written (run with --verbose for its log), or "
            f"{START_A_SERVER}"
        )
    return ServiceUnavailableError(
        f"the temporary Prefect server did not start within {budget} s (a busy machine?); "
        f"raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or {START_A_SERVER}"
    )


# --- the commands -----------------------------------------------------------------------------


def run_training(
    request: TrainingRequest,
    *,
    verbose: bool = False,
    startup_timeout: int | None = None,
    say: Callable[[str], None] = _stderr,
) -> RunSummary:
    """Run the training flow on ``request``; return what it published (or skipped).

    The request is prepared (``flows.training.prepare``: the environment's defaults
    filled in, paths and the registry URI checked, a missing inbox folder refused: it was
    typed just now) and its datasets resolved in the registry, before a Prefect server is
    asked or started, so a missing source, inbox or dataset fails at once. A failed run
    raises the exception that failed it (GateFailedError for a gate refusal, exit 5); a
    run that ends without one raises PipelineError. An interrupted run raises KeyboardInterrupt, or Interrupted
    naming the versions it had published.
    """
    quiet_prefect_logging(verbose)  # before flows.training imports Prefect
    from flows._common import open_registry
    from flows.records import PUBLISHED
    from flows.training import prepare, training_pipeline
    from softmax_core.requests import parts

    run = prepare(request, inbox_must_exist=True)
    if run.data.datasets:  # a dataset that is not there: exit 3 now (the inbox's is apart)
        with open_registry(run.target.location) as reg:
            for ref in run.data.datasets:
                reg.resolve_dataset(ref)
    mark = PUBLISHED.mark()
    try:
        with prefect_session(verbose=verbose, startup_timeout=startup_timeout, say=say):
            state = training_pipeline(**parts(run), return_state=True)
            # inside the session: a run that failed once it was interrupted is interrupted
            summary: RunSummary = result_of(state)
    except KeyboardInterrupt as e:
        if PUBLISHED.since(mark):  # kept: a second run would publish a duplicate
            moving = run.target.champion if run.target.promote else None
            raise Interrupted(PUBLISHED.said(mark, moving=moving)) from e
        raise
    return summary


def run_scoring(
    request: ScoringRequest,
    *,
    dask_address: str | None = None,
    verbose: bool = False,
    startup_timeout: int | None = None,
    say: Callable[[str], None] = _stderr,
) -> ScoreSummary:
    """Run the ``batch-scoring`` flow on ``request`` in a session; its ScoreSummary.

    The request is checked first (``flows.scoring.prepare``: PATH, the output, the model
    file, no review queue) before a Prefect server is asked or started, so a mistake fails
    at once, as it does without ``--flow``."""
    quiet_prefect_logging(verbose)
    from flows.scoring import prepare, run_batch_scoring

    run = prepare(request)
    with prefect_session(verbose=verbose, startup_timeout=startup_timeout, say=say):
        return run_batch_scoring(run, dask_address=dask_address)


def result_of(state: State[Any]) -> Any:
    """A final flow-run state's result, or the exception that failed the run.

    A run cancelled or crashed (Prefect's own ``CancelledRun`` / ``CrashedRun``), or one
    that ended with no exception at all, raises PipelineError; one that failed while
    handling Prefect's ``TerminationSignal`` (a SIGTERM) raises KeyboardInterrupt.
    """
    from prefect.exceptions import PrefectException

    if state.is_completed():
        return state.result()
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, BaseException) and _terminated(exc):
        raise KeyboardInterrupt("signal SIGTERM") from exc
    if isinstance(exc, BaseException) and not isinstance(exc, PrefectException):
        raise exc
    raise PipelineError(
        f"flow run ended {state.type.value} without a result: {state.message}; "
        "see the run in the Prefect UI (`prefect flow-run ls`)"
    )


def _terminated(exc: BaseException) -> bool:
    """True when ``exc`` was raised while handling Prefect's ``TerminationSignal``.

    During a flow run Prefect's own SIGTERM handler raises ``TerminationSignal``. When it
    lands while the task engine creates a task run, the engine's crash handling sets a
    state on a task run that does not exist yet and raises ``ValueError("Task run is not
    set")`` in its place (prefect/task_engine.py ``initialize_run`` -> ``handle_crash``
    -> ``set_state``): the flow fails with that error, and the signal reaches no one
    else. It is still an interrupt."""
    from prefect.exceptions import TerminationSignal

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TerminationSignal):
            return True
        current = current.__cause__ or current.__context__
    return False
