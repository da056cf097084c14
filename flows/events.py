"""Registry events as Prefect events, when a Prefect API is configured, and as signed
webhooks, when ``SOFTMAX_PIPE_WEBHOOK_URL`` names receivers.

:func:`registry_listeners` is what the CLI and the flows hand to every registry they
open: a :class:`PrefectEvents` listener when a Prefect API is configured (without one, a
plain ``softmax-pipe registry promote`` neither imports Prefect nor starts a server for
it), and the process's :class:`registry.webhooks.Webhooks` when webhooks are configured
(``softmax_core.settings.webhook_settings``).

Emitting never fails or slows the registry operation:

- inside a flow or task run, ``emit_event`` only queues the event for Prefect's events
  worker (a background thread, drained when the run's process exits), and Prefect links
  it to the run;
- elsewhere (the CLI), events wait until the command's work is done and its output
  printed; :meth:`PrefectEvents.flush` then sends them over one connection, given at
  most ``SEND_SECONDS``: an API that is down costs a warning line, never the result.
- webhooks are sent by background threads as soon as the operation is done; :func:`flush`
  waits for them (bounded) once the command's output is printed, and a dead receiver
  costs one warning line.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from registry import webhooks
from registry.events import Listener, RegistryEvent
from softmax_core import settings

log = logging.getLogger(__name__)

SEND_SECONDS = 5.0  # the most a command waits, after its work, to hand its events over


def api_configured() -> bool:
    """True when a Prefect API URL is set: in the environment, in the settings of a
    Prefect already running in this process (a flow run, a test harness), or in the
    active Prefect profile. Without one, Prefect would start a temporary server just to
    receive the event."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    if "prefect" not in sys.modules and not _profile_mentions_api_url():
        return False  # the common case costs no Prefect import
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def _profile_mentions_api_url() -> bool:
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml")
    try:
        return "PREFECT_API_URL" in profiles.expanduser().read_text(errors="replace")
    except OSError:
        return False


def _in_a_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


class PrefectEvents:
    """A registry listener that hands events to the configured Prefect API."""

    def __init__(self) -> None:
        self.pending: list[RegistryEvent] = []

    def __call__(self, event: RegistryEvent) -> None:
        if _in_a_run():
            from prefect.events import emit_event

            emit_event(event=event.event, resource=event.resource, payload=event.payload)
        else:
            self.pending.append(event)

    def flush(self, timeout: float = SEND_SECONDS) -> int:
        """Send the events held back (outside a run); return how many were sent. Never
        raises: an API that cannot be reached within ``timeout`` is one warning."""
        events, self.pending = self.pending, []
        if not events:
            return 0
        try:
            _send(events, timeout)
        except Exception as e:
            log.warning(
                "could not send %d registry event(s) to the Prefect API (%s); "
                "the registry change itself is done",
                len(events),
                str(e) or f"no answer within {timeout:.0f} s",
            )
            return 0
        return len(events)


def _send(events: list[RegistryEvent], timeout: float) -> None:
    import anyio
    from prefect.events import Event
    from prefect.events.clients import get_events_client

    async def send() -> None:
        with anyio.fail_after(timeout):
            async with get_events_client(reconnection_attempts=0) as client:
                for e in events:
                    fields = {"event": e.event, "resource": e.resource, "payload": e.payload}
                    await client.emit(Event.model_validate(fields))

    # Prefect's client logs its own warning on a failed connection; ours (one line) says it.
    quiet = logging.getLogger("prefect.events.clients")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        anyio.run(send)
    finally:
        quiet.setLevel(level)


def registry_listeners() -> tuple[Listener, ...]:
    """The listeners a registry opened here should have: Prefect's, if it has an API, and
    the process's webhooks, if any are configured."""
    found: list[Listener] = [PrefectEvents()] if api_configured() else []
    hooks = webhooks.shared(settings.webhook_settings())
    if hooks is not None:
        found.append(hooks)
    return tuple(found)


def flush(listeners: tuple[Listener, ...]) -> None:
    """Send what the listeners held back, and wait (bounded) for the webhooks in flight:
    the CLI calls this once its work is done and its output printed."""
    for listener in listeners:
        if isinstance(listener, PrefectEvents | webhooks.Webhooks):
            listener.flush()
