"""End to end, with real processes: the deploy/ set-up run the way a user runs it, minus docker.

One Prefect server (``prefect server start``, SQLite in a temp dir, a free port, its API
auth on as in deploy/docker-compose.yml: every client sends the auth string), the
deployments registered from ``deploy/prefect.yaml`` by ``softmax-pipe deploy``, real
``prefect worker`` processes on the ``process`` pool, an S3 registry on SeaweedFS (the
session's server on loopback) written with the deployment's worker key, a trainer's
(rights from deploy/seaweedfs/identities.json: what a trainer makes under registry/,
never an alias; the registry check runs before the first write), and its approver's key
for ``softmax-pipe registry approve``, real MNIST. In order:

1. both deployments exist with their cron schedules (and the scheduler plans Monday
   03:00 runs); the pool and the crash automation too;
2. ``retrain`` triggered by hand (``prefect deployment run``) publishes mnist:1 and
   requests ``champion``'s move; the approver approves it (the CLI, with the Prefect
   API: the move is an event);
3. ``retrain`` with a floor of 0.999 is refused by the gate: run Failed, champion stays;
4. the worker and its flow run are SIGKILLed mid-training; a new worker scores 20 real
   MNIST test digits from the inbox (``score-inbox``) while the crash automation marks the
   dead run Crashed; nothing was published; labelled printed digits arrive in the
   retrain's inbox, and the next ``retrain`` (the deployment's own parameters: sync the
   inbox into dataset ``inbox``, warm start from the champion) publishes a model better on
   that domain, approved in turn; the one after it, with nothing new, trains nothing;
5. the registry drops every write during publish: the run fails after bounded retries,
   with a message naming the endpoint; nothing of it is visible in the registry;
6. ``softmax-pipe serve`` (one box, no pool) refuses while the pool's deployments
   exist, takes them over with ``--replace``, runs a scoring run itself and pauses the
   schedules when stopped.

Throughout, each move of ``mnist@champion`` (the approvals of retrain 1, then of the
retrain after the crash) is an event that triggers ``score-inbox`` (its deployment
trigger): the test waits for that run and checks that the new version scored the inbox
(the output's ``model``).

Every wait is bounded and every process is stopped in ``finally``; the test then checks
that no process carrying its marker is left.
"""

from __future__ import annotations

import concurrent.futures
import csv
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any
from uuid import UUID

import boto3
import numpy as np
import pytest
import yaml
from PIL import Image

from registry import Registry
from tests.conftest import S3_DEPLOY_APPROVER, S3_DEPLOY_WORKER
from tests.flows.prefect_stack import (
    REPO,
    PrefectServer,
    ProcessTracker,
    WriteCutProxy,
    tail,
    wait_until,
)
from tests.printed_digits import write_printed
from tests.s3server import S3_REGION

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]  # room for a busy machine

BUCKET = "softmax-models"  # the bucket deploy/prefect.yaml and docker-compose.yml use
REGISTRY = f"s3://{BUCKET}/registry"
RETRAIN = "training-pipeline/retrain"
SCORE = "batch-scoring/score-inbox"
RUN_TIMEOUT = 400.0  # seconds for any one flow run to finish (about 30 s when idle)
CRASH_WINDOW = 45  # seconds without heartbeat before a run is Crashed (deploy file: 90)
HEARTBEAT = 30  # PREFECT_FLOWS_HEARTBEAT_FREQUENCY of the deployments (Prefect's minimum)
N_DIGITS = 20
ZOMBIE_FILE = "deploy/automations/crash-zombie-flow-runs.yaml"


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def bucket(s3_env: str) -> str:
    """The registry bucket on the S3 server, empty (its name is fixed by deploy/prefect.yaml)."""
    s3 = boto3.resource("s3", endpoint_url=s3_env, region_name=S3_REGION)
    b = s3.Bucket(BUCKET)
    if b.creation_date is None:
        b.create()
    b.objects.all().delete()
    return BUCKET


@pytest.fixture
def inbox(tmp_path: Path, mnist_dir: Path) -> tuple[Path, dict[str, int]]:
    """20 real MNIST test digits as PNGs, half of them as dark ink on white paper."""
    from softmax_core.mnist import read_idx

    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz", images=True)
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz", images=False)
    folder = tmp_path / "inbox"
    folder.mkdir()
    truth = {}
    for i in range(N_DIGITS):
        pixels = images[i] if i % 2 == 0 else 255 - images[i]
        name = f"digit-{i:02d}.png"
        Image.fromarray(np.ascontiguousarray(pixels)).resize((56, 56)).save(folder / name)
        truth[name] = int(labels[i])
    return folder, truth


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[ProcessTracker, PrefectServer]]:
    tracker = ProcessTracker(tmp_path / "logs")
    # API auth on, as deploy/docker-compose.yml has it (issue 27, item 3)
    server = PrefectServer(tracker, tmp_path / "prefect", auth=f"admin:{uuid.uuid4().hex}")
    try:
        yield tracker, server
    finally:
        tracker.stop_all()
        left = tracker.survivors()
        assert not left, f"processes left running after the test: {left}"


# --- helpers -----------------------------------------------------------------------------------


def bucket_keys(endpoint: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=S3_REGION)
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def registry_state(endpoint: str, cache: Path) -> tuple[list[int], dict[str, int], list[str]]:
    """(version numbers, aliases, every key in the bucket but the scoring runs' profiles)
    of mnist in the test registry: what training, publishing and approving write."""
    with Registry.open(REGISTRY, endpoint_url=endpoint, cache_dir=cache) as reg:
        versions = reg.version_numbers("mnist")
        aliases = reg.aliases("mnist") if versions else {}
    keys = [k for k in bucket_keys(endpoint) if "/monitoring/" not in k]
    return versions, aliases, keys


def profiles(endpoint: str) -> list[str]:
    """The profiles the scoring runs stored (the worker's trainer key writes monitoring/)."""
    return [k for k in bucket_keys(endpoint) if "/monitoring/mnist/profiles/" in k]


def deployment_id(server: PrefectServer, name: str) -> UUID:
    with server.client() as client:
        found: UUID = client.read_deployment_by_name(name).id
    return found


def trigger(server: PrefectServer, name: str, **kwargs: Any) -> UUID:
    """A run of deployment ``name`` scheduled for now (what a schedule or the UI does)."""
    with server.client() as client:
        run = client.create_flow_run_from_deployment(deployment_id(server, name), **kwargs)
    run_id: UUID = run.id
    return run_id


def read_run(server: PrefectServer, run_id: UUID) -> Any:
    with server.client() as client:
        return client.read_flow_run(run_id)


def wait_final(
    server: PrefectServer, tracker: ProcessTracker, run_id: UUID, log: str, timeout: float
) -> Any:
    """Wait for a terminal state; return the flow run."""

    def done() -> Any:
        run = read_run(server, run_id)
        return run if run.state and run.state.is_final() else None

    return wait_until(
        f"flow run {run_id} to finish",
        done,
        timeout,
        interval=0.5,
        on_timeout=lambda: f"state: {read_run(server, run_id).state}\n" + tail(tracker.log(log)),
    )


def task_runs(server: PrefectServer, run_id: UUID) -> dict[str, Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with server.client() as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    return {r.name.rsplit("-", 1)[0]: r for r in runs}  # "train-32b" -> "train"


def scheduled(server: PrefectServer, name: str) -> list[Any]:
    """Expected start times (UTC) of the runs the scheduler created for a deployment."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    dep = deployment_id(server, name)
    with server.client() as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep]))
        )
    return [
        r.expected_start_time.astimezone(UTC)
        for r in runs
        if r.state and r.state.is_scheduled() and r.auto_scheduled
    ]


def run_cli(argv: list[str], env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def cron_of(server: PrefectServer, name: str) -> tuple[list[str], bool]:
    """The cron strings of a deployment and whether any of its schedules is active."""
    with server.client() as client:
        dep = client.read_deployment_by_name(name)
    crons = [s.schedule.cron for s in dep.schedules]
    return crons, any(s.active for s in dep.schedules) and not dep.paused


def warm_cache(mnist_dir: Path, cache: Path) -> None:
    from softmax_core import settings
    from softmax_core.mnist import cached_features, load_mnist
    from softmax_core.preprocess import Steps

    ds = load_mnist(str(mnist_dir), cache_dir=cache)
    for split in ("train", "test"):
        cached_features(ds, split, Steps.named(settings.FEATURES))


def merged(parameters: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` with ``changes`` merged in, key by key at every depth.

    A flow's parameters are the parts of its request, and Prefect merges a run's
    parameters into its deployment's only at the top: a run that changes one field
    passes that whole part, changed."""
    out = dict(parameters)
    for key, value in changes.items():
        old = out.get(key)
        out[key] = (
            merged(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return out


def check_scores(output: Path, truth: dict[str, int], model: str | None = None) -> int:
    """The CSV has a row per digit, all scored (by ``model``, if given); returns how many
    match their label."""
    with output.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["path"] for r in rows) == sorted(truth), rows
    assert all(r["status"] == "ok" for r in rows), rows
    if model is not None:
        assert {r["model"] for r in rows} == {model}, rows
    return sum(int(r["label"]) == truth[r["path"]] for r in rows)


def said(server: PrefectServer, run_id: UUID, text: str) -> bool:
    """Whether a log line of flow run ``run_id`` (on the API) contains ``text``."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with server.client() as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return any(text in log.message for log in logs)


def runs_of(server: PrefectServer, name: str) -> set[UUID]:
    """Ids of every flow run of deployment ``name``."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    dep = deployment_id(server, name)
    with server.client() as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep]))
        )
    return {r.id for r in runs}


def wait_triggered(
    server: PrefectServer, tracker: ProcessTracker, known: set[UUID], log: str
) -> Any:
    """The score-inbox run the champion's move triggered (one not in ``known``), finished."""

    def started() -> UUID | None:
        for r in runs_of(server, SCORE) - known:  # cron runs wait, Scheduled, for their day
            state = read_run(server, r).state
            if state is not None and not state.is_scheduled():
                return r
        return None

    run_id = wait_until(
        "a score-inbox run triggered by the champion's move",
        started,
        RUN_TIMEOUT,
        interval=0.5,
        on_timeout=lambda: tail(tracker.log(log)),
    )
    known.add(run_id)
    return wait_final(server, tracker, run_id, log, RUN_TIMEOUT)


# --- the test ----------------------------------------------------------------------------------


def test_scheduled_deployments_end_to_end(
    tmp_path: Path,
    stack: tuple[ProcessTracker, PrefectServer],
    s3_endpoint: str,
    bucket: str,
    mnist_dir: Path,
    session_cache: Path,
    inbox: tuple[Path, dict[str, int]],
) -> None:
    tracker, server = stack
    folder, truth = inbox
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    def lap(what: str) -> None:
        timings[what] = round(time.monotonic() - t0, 1)
        print(f"e2e {timings[what]:6.1f} s  {what}", flush=True)

    # MNIST parsed and its features cached while the server starts (the flows find a warm
    # cache, as on any box that ran before; ingest itself is tested with the flows)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        warm = pool.submit(warm_cache, mnist_dir, session_cache)
        server.start()
        lap("server up")
        warm.result(timeout=600)
    import httpx

    # without the auth string the API answers only its health check
    assert httpx.get(f"{server.api_url}/health", timeout=30).status_code == 200
    unauthenticated = httpx.post(f"{server.api_url}/flow_runs/filter", json={}, timeout=30)
    assert unauthenticated.status_code == 401, unauthenticated.text
    client_env = server.client_env(tmp_path / "client-home")
    worker_env = {
        **server.client_env(tmp_path / "worker-home"),
        # the deployment's worker key: it writes only under registry/ (and is checked first)
        **S3_DEPLOY_WORKER.env(s3_endpoint),
        "SOFTMAX_PIPE_MNIST": str(mnist_dir),
        "SOFTMAX_PIPE_CACHE": str(session_cache),
        "SOFTMAX_PIPE_PROJECT_DIR": str(REPO),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        # no PREFECT_FLOWS_HEARTBEAT_FREQUENCY: the deployments' job variables set it
    }
    check_cache = tmp_path / "check-cache"
    prefect = [sys.executable, "-m", "prefect"]
    softmax_pipe = [str(Path(sys.executable).parent / "softmax-pipe")]

    # 1. register as a user would; check through the client --------------------------------
    triggered = tmp_path / "triggered"
    triggered.mkdir()
    where = ["--registry", REGISTRY, "--labelled", str(labelled), "--inbox", str(folder)]
    where += ["--output", str(triggered / "scores.csv")]  # the worker's locations
    where += ["--request"]  # its key is a trainer's, as compose's register deploys it
    out = run_cli([*softmax_pipe, "deploy", "--project-dir", str(REPO), *where], client_env)
    assert "deployment training-pipeline/retrain: cron 0 3 * * 1" in out, out
    assert "deployment batch-scoring/score-inbox: cron 0 6 * * *" in out, out
    lap("deployed")
    assert cron_of(server, RETRAIN) == (["0 3 * * 1"], True)
    assert cron_of(server, SCORE) == (["0 6 * * *"], True)
    with server.client() as client:
        assert client.read_work_pool("process").type == "process"
        retrain = client.read_deployment_by_name(RETRAIN)
        assert retrain.work_pool_name == "process"
        request = retrain.parameters  # the parts of the flow's request
        assert set(request) <= {"data", "hyper", "gate", "target", "retries"}
        assert request["target"]["location"]["registry"] == REGISTRY
        assert request["hyper"]["warm_start"] is True
        assert "softmax-pipe" in retrain.tags  # what the crash automation watches
        assert retrain.job_variables == {"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}}
        assert retrain.pull_steps == [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $SOFTMAX_PIPE_PROJECT_DIR }}"
                }
            }
        ]
        # a shorter crash window for the test (the file's 90 s is three missed heartbeats)
        from prefect.events.schemas.automations import AutomationCore

        spec = yaml.safe_load((REPO / ZOMBIE_FILE).read_text())
        spec["trigger"]["within"] = CRASH_WINDOW
        (zombie,) = client.read_automations_by_name(spec["name"])
        client.update_automation(zombie.id, AutomationCore.model_validate(spec))
        # score-inbox's trigger is an automation too; its runs score this test's inbox, the
        # folders deploy was given
        (on_champion,) = client.read_automations_by_name("score-inbox on mnist@champion moved")
        assert on_champion.enabled
        score_params = client.read_deployment_by_name(SCORE).parameters
        assert score_params["input"] == str(folder)
        assert score_params["output"]["path"] == str(triggered / "scores.csv")
        # retrain syncs this test's labelled inbox (empty for now: nothing labelled yet)
        assert request["data"]["skip_unchanged"] is True
        assert request["data"]["inbox"] == str(labelled)
        retrain_params = retrain.parameters

    approver_env = {
        **server.client_env(tmp_path / "approver-home"),
        **S3_DEPLOY_APPROVER.env(s3_endpoint),
        "SOFTMAX_PIPE_REGISTRY": REGISTRY,
        "SOFTMAX_PIPE_CACHE": str(tmp_path / "approver-cache"),
    }

    def approve(version: int) -> None:
        """What the deployment's approver does after a retrain requested the move."""
        argv = [*softmax_pipe, "registry", "approve", f"mnist:{version}", "champion"]
        out = run_cli([*argv, "--by", "e2e"], approver_env)
        assert f"mnist@champion -> mnist:{version}" in out, out

    def retrain_with(**parts: dict[str, Any]) -> dict[str, Any]:
        """The retrain deployment's parameters with some fields of its request changed."""
        return merged(retrain_params, parts)

    seen_scores: set[UUID] = set()

    tracker.start("worker-1", ["prefect", "worker", "start", "--pool", "process"], worker_env)

    # 2. the first retrain, triggered by hand, bootstraps the champion -------------------------
    no_warm_start = json.dumps(retrain_with(hyper={"warm_start": False}))
    out = run_cli([*prefect, "deployment", "run", RETRAIN, "--params", no_warm_start], client_env)
    first = UUID(re.search(r"UUID: ([0-9a-f-]{36})", out).group(1))  # type: ignore[union-attr]
    run = wait_final(server, tracker, first, "worker-1", RUN_TIMEOUT)
    assert run.state.is_completed(), f"{run.state}\n{tail(tracker.log('worker-1'))}"
    lap("retrain 1 completed")
    # the worker's key may not move the alias: the run requested it, and an approver approves
    assert registry_state(s3_endpoint, check_cache)[:2] == ([1], {})
    approve(1)
    lap("mnist:1 approved")
    # the champion moved (none -> 1): the inbox is re-scored by it, on the event
    run = wait_triggered(server, tracker, seen_scores, "worker-1")
    assert run.state.is_completed(), f"{run.state}\n{tail(tracker.log('worker-1'))}"
    assert check_scores(triggered / "scores.csv", truth, model="mnist:1") >= N_DIGITS - 3
    lap("score-inbox triggered by mnist@champion -> 1")
    versions, aliases, keys_after_1 = registry_state(s3_endpoint, check_cache)
    assert versions == [1] and aliases == {"champion": 1}
    assert len(profiles(s3_endpoint)) == 1  # the scoring run's profile, with the worker's key

    # the server's scheduler has planned the next runs from the cron: Mondays, 03:00 UTC
    planned = wait_until("scheduled runs of retrain", lambda: scheduled(server, RETRAIN), 120)
    assert all(t.weekday() == 0 and (t.hour, t.minute) == (3, 0) for t in planned), planned

    # 3. a deliberately bad configuration: the gate refuses, the champion stays --------------
    strict = retrain_with(gate={"min_accuracy": 0.999}, hyper={"epochs": 1})
    bad = trigger(server, RETRAIN, parameters=strict)
    run = wait_final(server, tracker, bad, "worker-1", RUN_TIMEOUT)
    assert run.state.is_failed(), run.state
    assert "gate" in (run.state.message or "").lower() and "0.999" in run.state.message
    lap("refused retrain")
    assert registry_state(s3_endpoint, check_cache) == ([1], {"champion": 1}, keys_after_1)

    # 4. the worker dies mid-training: Crashed, nothing published; the next runs succeed -----
    doomed = trigger(server, RETRAIN, parameters=retrain_with(hyper={"epochs": 500}))

    def training() -> bool:
        tr = task_runs(server, doomed).get("train")
        return bool(tr and tr.state and tr.state.is_running())

    wait_until("the doomed run to start training", training, RUN_TIMEOUT, interval=0.3)
    (engine,) = [
        p
        for p in tracker.tree(tracker.started["worker-1"])
        if p.environ().get("PREFECT__FLOW_RUN_ID") == str(doomed)
    ]
    # the job variable reached the flow-run process: a heartbeat every 30 s
    assert engine.environ()["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == str(HEARTBEAT)
    killed = tracker.kill_tree("worker-1")
    assert killed >= 2  # the worker and the flow-run process
    lap("worker killed mid-training")
    assert read_run(server, doomed).state.is_running()  # nobody left to say otherwise

    # a new worker takes over at once: the daily scoring runs while the zombie is pending
    tracker.start("worker-2", ["prefect", "worker", "start", "--pool", "process"], worker_env)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    scored = trigger(
        server,
        SCORE,
        parameters=merged(score_params, {"output": {"path": str(outbox / "s.csv")}}),
    )
    seen_scores.add(scored)
    run = wait_final(server, tracker, scored, "worker-2", RUN_TIMEOUT)
    assert run.state.is_completed(), f"{run.state}\n{tail(tracker.log('worker-2'))}"
    assert check_scores(outbox / "s.csv", truth) >= N_DIGITS - 3
    assert len(profiles(s3_endpoint)) == 2
    lap("score-inbox completed")

    run = wait_final(server, tracker, doomed, "worker-1", CRASH_WINDOW + 2 * HEARTBEAT)
    assert run.state.is_crashed(), run.state
    assert "heartbeats stopped" in (run.state.message or ""), run.state.message
    lap("crash detected")
    assert registry_state(s3_endpoint, check_cache) == ([1], {"champion": 1}, keys_after_1)

    # labelled images arrive in the inbox: printed digits, which mnist:1 reads worst
    write_printed(labelled, 30, seed=41)
    nxt = trigger(server, RETRAIN)  # the deployment's own parameters: sync, warm start, gate
    run = wait_final(server, tracker, nxt, "worker-2", RUN_TIMEOUT)
    assert run.state.is_completed(), f"{run.state}\n{tail(tracker.log('worker-2'))}"
    lap("retrain after crash completed")
    assert registry_state(s3_endpoint, check_cache)[:2] == ([1, 2], {"champion": 1})
    approve(2)
    run = wait_triggered(server, tracker, seen_scores, "worker-2")  # champion 1 -> 2
    assert run.state.is_completed(), f"{run.state}\n{tail(tracker.log('worker-2'))}"
    assert check_scores(triggered / "scores.csv", truth, model="mnist:2") >= N_DIGITS - 3
    lap("score-inbox triggered by mnist@champion -> 2")
    versions, aliases, keys_after_2 = registry_state(s3_endpoint, check_cache)
    assert versions == [1, 2] and aliases == {"champion": 2}
    with Registry.open(REGISTRY, endpoint_url=s3_endpoint, cache_dir=check_cache) as reg:
        lineage = reg.resolve("mnist@champion").lineage
    assert lineage["warm_start_from"] == "mnist:1", lineage  # the deployment's warm start
    assert lineage["flow_run_id"] == str(nxt)
    assert [d["name"] for d in lineage["datasets"]] == ["inbox"]
    with Registry.open(REGISTRY, endpoint_url=s3_endpoint, cache_dir=check_cache) as reg:
        domain = reg.resolve("mnist:2").metrics["domains"]["inbox"]
        assert [v.version for v in reg.dataset_versions("inbox")] == [1]
    assert domain["accuracy"] > domain["champion_accuracy"], domain  # better on that domain

    # nothing changed since mnist:2 was made: the scheduled run trains nothing ------------
    idle = trigger(server, RETRAIN)
    run = wait_final(server, tracker, idle, "worker-2", RUN_TIMEOUT)
    assert run.state.is_completed(), f"{run.state}\n{tail(tracker.log('worker-2'))}"
    assert "train" not in task_runs(server, idle) and "publish" not in task_runs(server, idle)
    wait_until("the run's log to say why", lambda: said(server, idle, "nothing new to learn"), 60)
    lap("retrain with nothing new: skipped")
    assert registry_state(s3_endpoint, check_cache) == ([1, 2], {"champion": 2}, keys_after_2)

    # 5. the registry endpoint drops every write during publish -------------------------------
    with WriteCutProxy(s3_endpoint) as proxy:
        cut = trigger(
            server,
            RETRAIN,
            parameters=retrain_with(
                retries={"io_retries": 2, "io_retry_delay": 0.2}, hyper={"epochs": 1}
            ),
            # merged into the deployment's env (its heartbeat setting stays)
            job_variables={"env": {"AWS_ENDPOINT_URL": proxy.url}},
        )
        started = time.monotonic()
        run = wait_final(server, tracker, cut, "worker-2", RUN_TIMEOUT)
        seconds = time.monotonic() - started
    lap("publish with the registry cut")
    assert run.state.is_failed(), run.state
    message = run.state.message or ""
    assert "cannot reach the S3 endpoint" in message and proxy.url in message, message
    publish = task_runs(server, cut)["publish"]
    assert publish.run_count == 3  # 1 + io_retries attempts, then the flow fails
    # each attempt: boto3's own bounded retries (3 in total) on the dropped connection
    assert 3 <= len(proxy.refused) <= 9, proxy.refused
    assert all(r.startswith("PUT ") for r in proxy.refused), proxy.refused
    assert seconds < RUN_TIMEOUT
    assert registry_state(s3_endpoint, check_cache) == ([1, 2], {"champion": 2}, keys_after_2)
    tracker.stop("worker-2")

    # 6. one box: `softmax-pipe serve` takes over both deployments ----------------------------
    serve_env = {**worker_env, "PREFECT_HOME": str(tmp_path / "serve-home")}
    serve_argv = [
        *softmax_pipe,
        "serve",
        "--registry",  # serve's default is the local registry, like every command's
        REGISTRY,
        "--retrain-cron",
        "0 4 * * 2",
        "--score-cron",
        "30 5 * * *",
        "--inbox",
        str(folder),
        "--output",
        str(outbox / "served.csv"),
    ]
    # the pool's deployments are in the way: refused unless --replace
    refused = subprocess.run(
        serve_argv, env=serve_env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode == 2, refused
    assert "training-pipeline/retrain (work pool 'process')" in refused.stderr, refused.stderr
    assert "--replace" in refused.stderr
    tracker.start("serve", [*serve_argv, "--replace"], serve_env, cwd=tmp_path)

    def served() -> bool:
        try:
            crons = (cron_of(server, RETRAIN)[0], cron_of(server, SCORE)[0])
        except Exception:
            return False
        return crons == (["0 4 * * 2"], ["30 5 * * *"])

    wait_until(
        "serve to register both deployments",
        served,
        180,
        interval=0.5,
        on_timeout=lambda: tail(tracker.log("serve")),
    )
    with server.client() as client:
        assert client.read_deployment_by_name(SCORE).work_pool_name is None
    by_hand = trigger(server, SCORE)
    run = wait_final(server, tracker, by_hand, "serve", RUN_TIMEOUT)
    assert run.state.is_completed(), f"{run.state}\n{tail(tracker.log('serve'))}"
    assert check_scores(outbox / "served.csv", truth) >= N_DIGITS - 3
    alive = tracker.started["serve"].poll() is None
    stopped_at = time.monotonic()
    code = tracker.stop("serve", signal.SIGINT, timeout=30)
    took = time.monotonic() - stopped_at
    serve_log = tracker.log("serve").read_text(errors="replace")
    # all of it in each message (twice, in CI runs started with SIGINT ignored, serve
    # ignored it and was killed at the deadline: see prefect_stack._from_a_terminal)
    seen = (
        f"serve {'alive' if alive else 'already gone'} at the SIGINT; exit {code} {took:.1f} s "
        f"after it; schedules now {cron_of(server, SCORE)}\n"
    )
    assert code == 0, seen + tail(tracker.log("serve"))
    assert "paused the schedules of" in serve_log, seen + tail(tracker.log("serve"))
    assert cron_of(server, SCORE) == (["30 5 * * *"], False), seen + tail(tracker.log("serve"))
    lap("serve: scoring run completed, stopped, schedules paused")
