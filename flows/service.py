"""softmax-pipe as a service: the two scheduled deployments, on one box or on a work pool.

``retrain``
    the training pipeline on a weekly cron: sync the labelled inbox into dataset
    ``inbox``, warm-start from ``mnist@champion``, gate every domain, publish and promote
    (``flows.training.training_pipeline``); a run with neither new data nor new code
    trains nothing ("nothing new to learn");
``score-inbox``
    batch scoring of an inbox folder on a daily cron (``flows.scoring``), and at once
    whenever the champion moves (:func:`champion_moved_trigger`).

Two ways to run them:

- :func:`serve`: one process serves both (``prefect.serve``), runs each flow run in a
  subprocess and needs no work pool or worker: ``softmax-pipe serve``;
- :func:`register`: the deployments of ``deploy/prefect.yaml`` go to a ``process`` work
  pool served by ``prefect worker`` processes (docker-compose, VMs):
  ``softmax-pipe deploy``, which also creates the pool and the crash-detection
  automation in ``deploy/automations/``. Their parameters, crons and trigger come from
  the same :class:`ServeOptions` as ``serve``'s (:func:`deployment_spec`), so the
  registry, the folders and the gate are ``deploy``'s options.

Crons, time zone, work pool and every default of the two requests are
``softmax_core.settings``'s (through :class:`ServeOptions` and ``softmax_core.requests``),
and ``deploy/prefect.yaml`` states the same values (a unit test validates its parameters
against the flows' requests and checks them against these defaults).
Both need a Prefect server (``PREFECT_API_URL``): its scheduler creates the runs.
Prefect itself is imported inside the functions, so the CLI's ``--help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from flows.runner import api_url, check_server
from softmax_core import settings
from softmax_core.errors import (
    InvalidInputError,
    NotFoundError,
    PipelineError,
    ServiceUnavailableError,
)
from softmax_core.requests import (
    Action,
    Data,
    Gate,
    Hyper,
    Location,
    ModelRef,
    Output,
    ScoringRequest,
    Target,
    TrainingRequest,
    parts,
)
from softmax_core.scoring import is_uri
from softmax_core.urls import redact

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment
    from prefect.events import DeploymentEventTrigger

RETRAIN = "retrain"
SCORE_INBOX = "score-inbox"
PREFECT_FILE = Path("deploy") / "prefect.yaml"
AUTOMATIONS_DIR = Path("deploy") / "automations"
DEPLOY_TIMEOUT = 300.0  # seconds for `prefect deploy --all`
PAUSE_TIMEOUT = 30.0  # seconds to pause the served schedules once serving stops
# Flow-run heartbeats, seconds: the crash-zombie-flow-runs automation marks a run Crashed
# after 90 s without one (Prefect's default, 180 s, would trip it on healthy runs).
HEARTBEAT_SECONDS = 30
TAG = "softmax-pipe"  # on every deployment; the automation watches only runs with it


@dataclass(frozen=True)
class ServeOptions:
    """What ``softmax-pipe serve`` schedules: the crons and each deployment's request.

    Build it with :meth:`build`, which holds the scheduled defaults (retraining warm-starts,
    syncs the labelled inbox and skips a run with nothing new; scoring reads the inbox and
    writes the outbox in the user's data folder); ``deploy/prefect.yaml`` states the same.
    """

    training: TrainingRequest
    scoring: ScoringRequest
    retrain_cron: str = settings.RETRAIN_CRON
    score_cron: str = settings.SCORE_CRON
    timezone: str = settings.TIMEZONE

    @classmethod
    def build(
        cls,
        *,
        location: Location | None = None,
        name: str = settings.MODEL_NAME,
        alias: str = settings.ALIAS,
        hyper: Hyper | None = None,
        gate: Gate | None = None,
        data: Data | None = None,
        labelled: str | None = None,
        inbox: str | None = None,
        output: str | None = None,
        action: Action = settings.TARGET_ACTION,
        **crons: str,
    ) -> ServeOptions:
        """The two requests, from the scheduled defaults and what the caller gives
        (``data``: how the labelled inbox is weighed; its inbox and ``skip_unchanged`` are
        the schedule's). The registry is resolved now (``$SOFTMAX_PIPE_REGISTRY``, the
        settings files, or the local default), so both deployments and the trigger name
        the same one. ``action``: what a passing retrain does (``Target.action``: promote,
        request, publish)."""
        where = location or Location()
        registry = settings.Settings.build(registry=where.registry).registry
        where = dataclasses.replace(where, registry=registry)
        training = TrainingRequest(
            data=dataclasses.replace(
                data or Data(),
                inbox=labelled or str(settings.default_labelled_dir()),
                skip_unchanged=True,
            ),
            hyper=hyper or Hyper(warm_start=True),
            gate=gate or Gate(),
            target=Target(location=where, name=name, alias=alias, action=action),
        )
        scoring = ScoringRequest(
            input=inbox or str(settings.default_inbox_dir()),
            model=ModelRef(f"{name}@{alias}", where),
            output=Output(path=output or str(settings.default_outbox_file())),
        )
        return cls(training=training, scoring=scoring, **crons)


def parameters(request: TrainingRequest | ScoringRequest) -> dict[str, Any]:
    """A deployment's parameters: the request's parts (the flow's parameters), as JSON."""
    return {
        name: part if isinstance(part, str) else dataclasses.asdict(part)
        for name, part in parts(request).items()
    }


# --- one box: prefect.serve ---------------------------------------------------------------


def _cron(expression: str, timezone: str, what: str) -> Any:
    """The schedule of ``expression`` in ``timezone``; InvalidInputError (exit 2) for a bad
    cron or a time zone that is not an IANA name (the names Prefect takes: the standard
    library's ``zoneinfo``, which Prefect validates with when it registers the schedule)."""
    from zoneinfo import available_timezones

    from prefect.schedules import Cron

    if timezone not in available_timezones():
        raise InvalidInputError(
            f"--timezone {timezone!r} is not a time zone; expected an IANA name such as "
            "'UTC', 'Europe/Paris' or 'America/New_York'"
        )
    try:
        return Cron(expression, timezone=timezone)
    except (ValueError, TypeError) as e:
        raise InvalidInputError(
            f"{what} cron {expression!r} (timezone {timezone!r}) is invalid: {e}; "
            "expected five fields, e.g. '0 3 * * 1' for Mondays at 03:00"
        ) from None


def champion_moved_trigger(registry: str, name: str, alias: str) -> DeploymentEventTrigger:
    """``score-inbox``'s trigger: a run as soon as ``name@alias`` moves in ``registry``
    (a promote or a rollback, from a flow or the CLI: ``softmax-pipe.alias.moved``), with
    the deployment's own parameters, so the inbox is scored by the new version.

    ``registry`` is matched as the registry names itself (its store's URI: an absolute
    folder, or ``s3://bucket/prefix``); deploy/prefect.yaml states the same trigger."""
    from prefect.events import DeploymentEventTrigger

    from registry import open_store
    from registry.events import ALIAS_MOVED

    return DeploymentEventTrigger(
        name=f"{SCORE_INBOX} on {name}@{alias} moved",
        description=f"Re-score the inbox when {name}@{alias} moves.",
        expect={ALIAS_MOVED},
        match={
            "softmax-pipe.registry": open_store(registry).uri,
            "softmax-pipe.model": name,
            "softmax-pipe.alias": alias,
        },
    )


def served_deployments(options: ServeOptions) -> list[RunnerDeployment]:
    """The two deployments ``serve`` runs, named as in deploy/prefect.yaml."""
    from prefect.types.entrypoint import EntrypointType

    from flows import scoring
    from flows.training import training_pipeline

    retrain = training_pipeline.to_deployment(
        name=RETRAIN,
        schedules=[_cron(options.retrain_cron, options.timezone, "--retrain-cron")],
        parameters=parameters(options.training),
        description="Scheduled retraining (softmax-pipe serve): warm start, gate, publish, "
        "promote.",
        tags=[TAG, "retrain", "served"],
        concurrency_limit=1,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    target = options.training.target
    registry = target.location.registry or ""
    score = scoring.batch_scoring.to_deployment(
        name=SCORE_INBOX,
        schedules=[_cron(options.score_cron, options.timezone, "--score-cron")],
        triggers=[champion_moved_trigger(registry, target.name, target.alias)],
        parameters=parameters(options.scoring),
        description="Scheduled scoring of the inbox (softmax-pipe serve).",
        tags=[TAG, "scoring", "served"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # to_deployment is "sync compatible": called outside an event loop it returns the object
    return [cast("RunnerDeployment", retrain), cast("RunnerDeployment", score)]


async def _pool_bound(names: list[str]) -> dict[str, tuple[Any, str]]:
    """``{"flow/deployment": (id, pool)}`` for those of ``names`` bound to a work pool."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return {
            name: (dep.id, dep.work_pool_name)
            async for name, dep in _existing(client, names)
            if dep.work_pool_name
        }


async def _existing(client: Any, names: list[str]) -> AsyncIterator[tuple[str, Any]]:
    """``(name, deployment)`` for each of ``names`` ("flow/deployment") the server has."""
    from prefect.exceptions import ObjectNotFound

    for name in names:
        try:
            yield name, await client.read_deployment_by_name(name)
        except ObjectNotFound:
            continue


async def _delete_deployments(ids: list[Any]) -> None:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        for deployment_id in ids:
            await client.delete_deployment(deployment_id)


def serve(
    options: ServeOptions,
    *,
    limit: int | None = None,
    replace: bool = False,
    say: Callable[[str], None] = print,
) -> None:
    """Serve both deployments from this process until SIGINT/SIGTERM.

    Flow runs execute in subprocesses of this one; schedules are paused on shutdown, so
    nothing piles up while no one is serving. Deployments of the same names registered
    on a work pool (``softmax-pipe deploy``) would also be picked up by that pool's
    workers: they are refused, unless ``replace`` deletes them first.
    """
    import anyio
    from prefect import serve as prefect_serve

    deployments = served_deployments(options)  # bad crons fail here, before any I/O
    say(
        f"serving {RETRAIN} ({options.retrain_cron}) and {SCORE_INBOX} "
        f"({options.score_cron}), {options.timezone}"
    )
    url = api_url()
    check_server(url)
    check_paths(options, say=say)
    names = [d.full_name for d in deployments]
    bound = anyio.run(_pool_bound, names)
    if bound and not replace:
        listed = ", ".join(f"{n} (work pool {pool!r})" for n, (_, pool) in sorted(bound.items()))
        raise InvalidInputError(
            f"{listed} already registered on {redact(url)}; a worker of that pool would race this "
            "process for their runs. Pass --replace to delete them and serve here, or run "
            "a worker instead (prefect worker start --pool process)"
        )
    if bound:
        anyio.run(_delete_deployments, [dep_id for dep_id, _ in bound.values()])
        for name, (_, pool) in sorted(bound.items()):
            say(f"deleted deployment {name} of work pool {pool!r} (--replace)")
    # Prefect pauses the schedules on its way out of a Ctrl-C, while its task is being
    # cancelled: that pause can be cut short (seen: a schedule left active), and some ways
    # out of ``prefect.serve`` skip the code after it (a SIGTERM while its runner stops is
    # its own ``sys.exit(0)``). Pausing again, here, however serving ended, is what makes
    # "paused when it stops" hold.
    try:
        prefect_serve(
            *deployments, limit=limit, pause_on_shutdown=True, heartbeat_seconds=HEARTBEAT_SECONDS
        )
    except BaseException:
        _pause_served(names, say, ending=True)
        raise
    _pause_served(names, say, ending=False)


def _pause_served(names: list[str], say: Callable[[str], None], *, ending: bool) -> None:
    """Pause the served schedules and say so. ``ending``: an exception is ending serving;
    a failed pause is then one warning line (that exception is what the user must see),
    otherwise it raises."""
    import anyio

    try:
        anyio.run(_pause_deployments, names)
    except Exception as e:
        if not ending:
            raise
        say(f"warning: the schedules of {', '.join(names)} may still be active ({e})")
        return
    say(f"paused the schedules of {', '.join(names)}")


async def _pause_deployments(names: list[str], timeout: float = PAUSE_TIMEOUT) -> None:
    """Pause the schedules of the deployments ``names`` ("flow/deployment") and read them
    back until the server says paused, bounded in time (ServiceUnavailableError)."""
    import anyio
    from prefect.client.orchestration import get_client

    try:
        with anyio.fail_after(timeout):
            async with get_client() as client:
                while True:
                    active = [dep async for _, dep in _existing(client, names) if not dep.paused]
                    if not active:
                        return
                    for dep in active:
                        await client.pause_deployment(dep.id)
                    await anyio.sleep(0.2)  # then read them back
    except TimeoutError:
        raise ServiceUnavailableError(
            f"the schedules of {', '.join(names)} were not paused within {timeout:.0f} s "
            f"on {api_url()}; pause them with "
            + " and ".join(f"`prefect deployment schedule pause {n} --all`" for n in names)
        ) from None


def check_paths(options: ServeOptions, *, say: Callable[[str], None] = print) -> None:
    """Every path the scheduled runs will use, checked when serving starts rather than at
    the first run hours later: the MNIST source resolves and the registry URI parses
    (``flows.training.prepare``), the registry answers a listing, the labelled inbox and
    the scoring inbox are folders (made when missing, with a line saying so), the output
    is not a folder and its folder is writable (made when missing). An ``s3://`` inbox or
    output (the runs read and write them on the registry's endpoint) is checked on S3,
    never made as a folder: the key may list each inbox's prefix, the output's bucket
    exists and the key may write beside it (``registry.objects``).

    Raises DataNotFoundError, InvalidNameError, InvalidInputError, StorageError or
    PermissionDeniedError.
    """
    from flows.training import prepare
    from registry import open_store

    run = prepare(options.training)
    location = run.target.location
    store = open_store(location.registry or "", endpoint_url=location.endpoint_url)
    try:
        next(iter(store.children("models/")), None)  # one request: the registry answers
    finally:
        store.close()
    endpoint = location.endpoint_url
    _inbox("labelled inbox", run.data.inbox or "", endpoint, say)
    _inbox("inbox", options.scoring.input, endpoint, say)
    if is_uri(options.scoring.output.path or ""):
        from registry.objects import check_writable

        out_uri, scored = options.scoring.output.path or "", options.scoring.input
        check_writable(out_uri, endpoint_url=endpoint, input_uri=scored)
        return
    out = Path(options.scoring.output.path or "").expanduser()
    if out.is_dir():
        raise InvalidInputError(f"output {out} is a folder; expected the CSV file to write")
    _folder("output folder", out.parent, say)
    if not os.access(out.parent, os.W_OK):
        raise InvalidInputError(f"output folder {out.parent} is not writable; pass --output")


def _inbox(what: str, where: str, endpoint: str | None, say: Callable[[str], None]) -> None:
    """An inbox the runs read: an ``s3://`` prefix this key may list (nothing is made on
    S3), else a folder (:func:`_folder`)."""
    if is_uri(where):
        from registry.objects import check_listable

        check_listable(where, what, endpoint_url=endpoint)
    else:
        _folder(what, Path(where), say)


def _folder(what: str, path: Path, say: Callable[[str], None]) -> None:
    """``path`` is a folder; made (with its parents) when missing."""
    path = path.expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise InvalidInputError(f"{what} {path} is not a folder")
    try:
        path.mkdir(parents=True)
    except OSError as e:
        raise InvalidInputError(f"{what} {path} does not exist and cannot be made: {e}") from None
    say(f"made the {what} {path} (it did not exist)")


# --- a work pool: prefect.yaml ---------------------------------------------------------------


def project_dir(explicit: str | Path | None = None) -> Path:
    """The checkout holding deploy/prefect.yaml and the flows: explicit, $SOFTMAX_PIPE_PROJECT_DIR, cwd."""
    raw = explicit or os.environ.get(settings.ENV_PROJECT_DIR) or os.getcwd()
    root = Path(raw).expanduser().resolve()
    for needed in (PREFECT_FILE, Path("flows") / "training.py"):
        if not (root / needed).is_file():
            raise NotFoundError(
                f"{root / needed} does not exist; expected the softmax-pipe checkout "
                f"(pass --project-dir or set {settings.ENV_PROJECT_DIR})"
            )
    return root


async def _ensure_work_pool(name: str) -> bool:
    """Create the ``process`` work pool unless it exists; True when it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    async with get_client() as client:
        try:
            pool = await client.read_work_pool(name)
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            await client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template)
            )
            return True
        if pool.type != "process":
            raise InvalidInputError(
                f"work pool {name!r} exists with type {pool.type!r}; expected 'process' "
                "(deploy/prefect.yaml runs flows as local subprocesses of a worker)"
            )
        return False


async def _apply_automations(folder: Path) -> list[str]:
    """Create or update, by name, each automation in ``folder/*.yaml``; returns the names."""
    import yaml
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore
    from pydantic import ValidationError

    applied: list[str] = []
    if not folder.is_dir():
        return applied
    async with get_client() as client:
        for path in sorted(folder.glob("*.yaml")):
            try:
                automation = AutomationCore.model_validate(yaml.safe_load(path.read_text()))
            except (yaml.YAMLError, ValidationError) as e:
                raise InvalidInputError(f"{path} is not a valid Prefect automation: {e}") from None
            existing = await client.read_automations_by_name(automation.name)
            if existing:
                await client.update_automation(existing[0].id, automation)
            else:
                await client.create_automation(automation)
            applied.append(automation.name)
    return applied


@dataclass(frozen=True)
class Registered:
    """What ``register`` did: pools (created or not), automations, deployments with crons."""

    pools: dict[str, bool]  # name -> created by this call
    automations: list[str]
    deployments: dict[str, list[str]]  # "flow/deployment" -> cron strings


async def _read_deployments(names: list[str]) -> dict[str, list[str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    found: dict[str, list[str]] = {}
    async with get_client() as client:
        deployments = await client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=names))
        )
        for dep in deployments:
            flow = await client.read_flow(dep.flow_id)
            crons = [str(getattr(s.schedule, "cron", s.schedule)) for s in dep.schedules]
            found[f"{flow.name}/{dep.name}"] = crons
    return found


def _load_spec(path: Path) -> tuple[list[str], list[str]]:
    """(deployment names, work pool names) of a prefect.yaml; bad input names the file."""
    import yaml

    if not path.is_file():
        raise NotFoundError(f"{path} does not exist; expected a prefect.yaml with deployments")
    try:
        spec = yaml.safe_load(path.read_text())
        deployments = spec["deployments"]
        names = [d["name"] for d in deployments]
        pools = sorted({d["work_pool"]["name"] for d in deployments})
    except (yaml.YAMLError, TypeError, KeyError) as e:
        raise InvalidInputError(
            f"{path} is not a prefect.yaml with named deployments on work pools ({e!r})"
        ) from None
    if not names:
        raise InvalidInputError(f"{path} declares no deployments")
    return names, pools


def deployment_spec(spec: dict[str, Any], options: ServeOptions) -> dict[str, Any]:
    """``spec`` (a parsed prefect.yaml) with its two deployments' parameters, schedules and
    trigger taken from ``options``: what ``softmax-pipe deploy`` registers, so the registry,
    the folders and the gate are its options, as for ``serve`` (the file's own values are
    what ``prefect deploy`` by hand registers)."""
    import copy

    out = copy.deepcopy(spec)
    target = options.training.target
    trigger = champion_moved_trigger(target.location.registry or "", target.name, target.alias)
    for d in out.get("deployments") or []:
        name = d.get("name")
        if name not in (RETRAIN, SCORE_INBOX):
            continue
        request = options.training if name == RETRAIN else options.scoring
        cron = options.retrain_cron if name == RETRAIN else options.score_cron
        d["parameters"] = parameters(request)
        d["schedules"] = [{"cron": cron, "timezone": options.timezone, "active": True}]
        if name == SCORE_INBOX:
            d["triggers"] = [
                {
                    "type": "event",
                    "name": trigger.name,
                    "description": trigger.description,
                    "enabled": True,
                    "match": dict(
                        trigger.match if isinstance(trigger.match, dict) else trigger.match.root
                    ),
                    "expect": sorted(trigger.expect),
                }
            ]
    return out


def register(
    root: Path,
    options: ServeOptions,
    *,
    prefect_file: Path | None = None,
    automations: bool = True,
    timeout: float = DEPLOY_TIMEOUT,
) -> Registered:
    """Register deploy/prefect.yaml with the server, its deployments' parameters, schedules
    and trigger from ``options`` (:func:`deployment_spec`, written to a temporary copy):
    pools, automations, ``prefect deploy --all``."""
    import tempfile

    import anyio
    import yaml

    spec = (prefect_file or root / PREFECT_FILE).resolve()
    names, pools = _load_spec(spec)
    served_deployments(options)  # bad crons fail here, before any I/O
    url = api_url()
    check_server(url)
    created = {pool: anyio.run(_ensure_work_pool, pool) for pool in pools}
    applied = anyio.run(_apply_automations, root / AUTOMATIONS_DIR) if automations else []
    with tempfile.TemporaryDirectory(prefix="softmax-pipe-deploy-") as tmp:
        written = Path(tmp) / "prefect.yaml"
        filled = deployment_spec(yaml.safe_load(spec.read_text()), options)
        written.write_text(yaml.safe_dump(filled, sort_keys=False, allow_unicode=True))
        command = [
            sys.executable,
            "-m",
            "prefect",
            "--no-prompt",
            "deploy",
            "--all",
            "--prefect-file",
            str(written),
        ]
        try:
            done = subprocess.run(
                command, cwd=root, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise ServiceUnavailableError(
                f"`prefect deploy --all` did not finish within {timeout:.0f} s against "
                f"{redact(url)}"
            ) from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise PipelineError(
            f"`prefect deploy --all --prefect-file {spec}` (its parameters from the options) "
            f"failed (exit {done.returncode}):\n{tail}"
        )
    return Registered(created, applied, anyio.run(_read_deployments, names))
