"""deploy/ checked without a server: prefect.yaml, the automation, the Dockerfile, compose.

The end-to-end test (test_e2e_deploy.py) runs these files for real; here each promise
they make is checked on its own, fast: schedules (computed by Prefect's own scheduler
code), parameters (validated against the flows' requests), pinning, non-root, secrets
kept out of git, and ``docker-compose config`` on the compose file. Every default
prefect.yaml states (model, alias, hyperparameters, gate, crons, time zone, work pool) is
checked against ``softmax_core.settings``, where it is defined once, and the requests it
states are the ones ``softmax-pipe serve`` builds.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from flows import service
from softmax_core import settings
from softmax_core.requests import Location, ScoringRequest, TrainingRequest, parts

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SERVICES = {"check-env", "seaweedfs", "s3", "create-bucket", "prefect-server", "register", "worker"}
SECRETS = (
    "S3_ADMIN_ACCESS_KEY",
    "S3_ADMIN_SECRET_KEY",
    "S3_WORKER_ACCESS_KEY",
    "S3_WORKER_SECRET_KEY",
    "S3_APPROVER_ACCESS_KEY",
    "S3_APPROVER_SECRET_KEY",
    "PREFECT_AUTH_PASSWORD",
)
COMPOSE_INSTALL = "apt-get install -y --no-install-recommends docker-compose"


def prefect_yaml() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    return spec


def requests_of(
    deployments: dict[str, dict[str, Any]],
) -> tuple[TrainingRequest, ScoringRequest]:
    """The two deployments' requests, validated by their flows as a worker's run does."""
    from flows.scoring import batch_scoring
    from flows.training import training_pipeline

    retrain = training_pipeline.validate_parameters(deployments["retrain"]["parameters"])
    score = batch_scoring.validate_parameters(deployments["score-inbox"]["parameters"])
    return TrainingRequest(**retrain), ScoringRequest(**score)


def registry_of(spec: dict[str, Any]) -> str:
    """The registry both deployments use (the compose worker's SOFTMAX_PIPE_REGISTRY)."""
    training, scoring = requests_of({d["name"]: d for d in spec["deployments"]})
    (registry,) = {training.target.location.registry, scoring.model.location.registry}
    return str(registry)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return prefect_yaml()


@pytest.fixture(scope="module")
def deployments(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in spec["deployments"]}


def fire_times(cron: str, timezone: str, n: int = 6) -> list[datetime]:
    """The next ``n`` run times, computed by the Prefect server's own schedule code."""
    from prefect.server.schemas.schedules import CronSchedule

    schedule = CronSchedule(cron=cron, timezone=timezone)

    async def dates() -> list[datetime]:
        return list(await schedule.get_dates(n, datetime(2030, 1, 1, tzinfo=UTC)))

    return anyio.run(dates)


# --- prefect.yaml ------------------------------------------------------------------------------


def test_two_deployments_on_the_process_pool(deployments: dict[str, dict[str, Any]]) -> None:
    assert set(deployments) == {service.RETRAIN, service.SCORE_INBOX}
    assert deployments["retrain"]["entrypoint"] == "flows/training.py:training_pipeline"
    assert deployments["score-inbox"]["entrypoint"] == "flows/scoring.py:batch_scoring"
    for d in deployments.values():
        assert d["work_pool"]["name"] == settings.WORK_POOL
        assert (REPO / d["entrypoint"].split(":")[0]).is_file()
    assert deployments["retrain"]["concurrency_limit"] == 1


def test_schedules_weekly_and_daily(deployments: dict[str, dict[str, Any]]) -> None:
    (retrain,) = deployments["retrain"]["schedules"]
    (score,) = deployments["score-inbox"]["schedules"]
    assert retrain["active"] is True and score["active"] is True
    weekly = fire_times(retrain["cron"], retrain["timezone"])
    daily = fire_times(score["cron"], score["timezone"])
    day = timedelta(days=1).total_seconds()
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(weekly)} == {7 * day}
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(daily)} == {day}
    assert {t.weekday() for t in weekly} == {0}  # Mondays
    # the crons and time zone `softmax-pipe serve` uses, defined once in settings
    assert (retrain["cron"], score["cron"]) == (settings.RETRAIN_CRON, settings.SCORE_CRON)
    assert retrain["timezone"] == score["timezone"] == settings.TIMEZONE


def test_pull_step_moves_into_the_checkout(spec: dict[str, Any]) -> None:
    """What a worker needs to find the code: the checkout named by its environment."""
    assert spec["build"] is None and spec["push"] is None
    assert spec["pull"] == [
        {
            "prefect.deployments.steps.set_working_directory": {
                "directory": "{{ $" + settings.ENV_PROJECT_DIR + " }}"
            }
        }
    ]
    assert not any("pull" in d for d in spec["deployments"])  # one pull for both


def test_parameters_fit_the_flows(
    deployments: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each deployment's parameters, the parts of its flow's request, validate against the
    flow, loaded as `prefect deploy` does; a value the request refuses is refused naming
    the field."""
    from prefect.exceptions import ParameterTypeError
    from prefect.flows import load_flow_from_entrypoint

    monkeypatch.chdir(REPO)  # entrypoints are relative to the checkout
    for d in deployments.values():
        flow: Any = load_flow_from_entrypoint(d["entrypoint"])
        assert set(d["parameters"]) <= set(flow.parameters.properties)
        flow.validate_parameters(d["parameters"])  # raises on a bad name or type
    bad = yaml.safe_load(yaml.safe_dump(deployments["retrain"]["parameters"]))
    bad["hyper"]["epochs"] = 0
    with pytest.raises(ParameterTypeError, match=r"epochs=0 is invalid"):
        load_flow_from_entrypoint(deployments["retrain"]["entrypoint"]).validate_parameters(bad)
    training, scoring = requests_of(deployments)
    assert training.hyper.warm_start is True
    assert scoring.model.ref == training.target.champion  # scores what wins
    assert training.target.location == scoring.model.location
    for d in deployments.values():  # credentials stay in the worker's environment
        text = yaml.safe_dump(d["parameters"])
        assert not re.search(r"^\s*\S*(key|secret|password|token)\S*:", text, re.I | re.M)


def test_parameters_state_the_settings_defaults(deployments: dict[str, dict[str, Any]]) -> None:
    """prefect.yaml restates defaults (a deployment must be readable on its own): each is
    the request's own default, which is softmax_core.settings'."""
    training, scoring = requests_of(deployments)
    assert training.target.name == settings.MODEL_NAME
    assert training.target.alias == settings.ALIAS
    assert training.hyper.epochs == settings.EPOCHS and training.hyper.seed == settings.SEED
    assert training.gate.min_accuracy == settings.MIN_ACCURACY
    assert training.data.inbox_dataset == settings.INBOX_DATASET
    assert training.data.skip_unchanged is True  # the scheduled run skips when nothing is new
    assert training.target.action == "request"  # the worker's key is a trainer's
    assert scoring.model.ref == settings.MODEL_REF
    # every value stated equals the request's default, except the deployment's own
    own = {"inbox", "skip_unchanged", "warm_start", "registry", "input", "path", "action"}

    def stated(doc: dict[str, Any], default: Any, where: str) -> None:
        for key, value in doc.items():
            if isinstance(value, dict):
                stated(value, getattr(default, key), f"{where}.{key}")
            elif key not in own:
                assert getattr(default, key) == value, f"{where}.{key}: {value!r}"

    stated(deployments["retrain"]["parameters"], TrainingRequest(), "retrain")
    stated(deployments["score-inbox"]["parameters"], ScoringRequest(input="-"), "score-inbox")


def test_serve_builds_the_same_requests(deployments: dict[str, dict[str, Any]]) -> None:
    """`softmax-pipe serve` schedules the same flows with the same requests, on no work pool."""
    training, scoring = requests_of(deployments)
    options = service.ServeOptions.build(
        location=training.target.location,
        labelled=training.data.inbox,
        inbox=scoring.input,
        output=scoring.output.path,
        action=training.target.action,  # serve --request
    )
    assert (options.training, options.scoring) == (training, scoring)
    retrain: Any
    score: Any
    retrain, score = service.served_deployments(options)
    assert (retrain.full_name, score.full_name) == (
        "training-pipeline/retrain",
        "batch-scoring/score-inbox",
    )
    assert retrain.work_pool_name is None and score.work_pool_name is None
    assert [s.schedule.cron for s in retrain.schedules] == [settings.RETRAIN_CRON]
    assert [s.schedule.cron for s in score.schedules] == [settings.SCORE_CRON]
    assert retrain.parameters == {k: dataclasses.asdict(v) for k, v in parts(training).items()}
    assert score.parameters == {
        "input": scoring.input,
        **{k: dataclasses.asdict(v) for k, v in parts(scoring).items() if k != "input"},
    }


def test_score_inbox_is_triggered_when_its_champion_moves(
    deployments: dict[str, dict[str, Any]],
) -> None:
    """The yaml's trigger, parsed by Prefect's own model, is the one serve builds: an
    alias.moved event of the deployment's own registry, model and alias."""
    from prefect.events import DeploymentEventTrigger

    from registry.events import ALIAS_MOVED

    score = deployments["score-inbox"]
    assert "triggers" not in deployments["retrain"]
    (raw,) = score["triggers"]
    assert raw.pop("type") == "event"
    from_yaml = DeploymentEventTrigger.model_validate(raw)
    _, scoring = requests_of(deployments)
    name, alias = scoring.model.ref.split("@")
    built = service.champion_moved_trigger(registry_of(prefect_yaml()), name, alias)
    assert from_yaml.model_dump() == built.model_dump()
    assert from_yaml.expect == {ALIAS_MOVED} and from_yaml.enabled
    assert from_yaml.parameters is None  # the deployment's own: inbox, output, champion
    assert not isinstance(from_yaml.match, dict)
    assert from_yaml.match.root == {
        "softmax-pipe.registry": "s3://softmax-models/registry",
        "softmax-pipe.model": settings.MODEL_NAME,
        "softmax-pipe.alias": settings.ALIAS,
    }
    options = service.ServeOptions.build(location=Location(registry="s3://bkt/r/"))
    _, served = service.served_deployments(options)
    (trigger,) = served.triggers
    assert isinstance(trigger, DeploymentEventTrigger)
    assert not isinstance(trigger.match, dict)
    assert trigger.match.root["softmax-pipe.registry"] == "s3://bkt/r"  # as the registry says


def test_serve_defaults_come_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No registry, inbox or output given: $SOFTMAX_PIPE_REGISTRY and the user's data folder."""
    monkeypatch.setenv(settings.ENV_REGISTRY, "s3://team/reg")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    options = service.ServeOptions.build()
    training, scoring = options.training, options.scoring
    assert training.target.location.registry == "s3://team/reg"
    assert training.target.alias == settings.ALIAS and training.target.promote
    assert training.data.inbox == str(tmp_path / "softmax-pipe" / "labelled")
    assert scoring.model.ref == settings.MODEL_REF
    assert scoring.model.location == training.target.location
    assert scoring.input == str(tmp_path / "softmax-pipe" / "inbox")
    assert scoring.output.path == str(tmp_path / "softmax-pipe" / "outbox" / "scores.csv")


def docker_options() -> service.ServeOptions:
    """What compose's ``register`` service deploys: its ``softmax-pipe deploy`` command's
    options (the docker stack's bucket and volumes, ``--request``), as the CLI reads them."""
    from softmax_pipe import cli_serve

    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    command = compose["services"]["register"]["command"]
    assert command[:2] == ["softmax-pipe", "deploy"], command
    return cli_serve._options(deploy_params(command[2:]))


def deploy_params(args: list[str]) -> dict[str, Any]:
    """The options ``softmax-pipe deploy ARGS`` parses (click's own parsing, no server)."""
    import typer.main

    from softmax_pipe.cli import app

    command = typer.main.get_command(app).commands["deploy"]  # type: ignore[attr-defined]
    params: dict[str, Any] = command.make_context("deploy", list(args)).params
    return params


def test_deploy_writes_its_options_into_the_deployments() -> None:
    """`softmax-pipe deploy --registry ... --labelled ... --inbox ... --output ...` (and the
    gate, crons): the parameters, schedules and trigger it registers are its options; the
    rest of prefect.yaml (entrypoints, pool, tags, job variables) is the file's."""
    from softmax_core.requests import Gate

    spec = prefect_yaml()
    options = service.ServeOptions.build(
        location=Location(registry="s3://team/models"),
        labelled="/srv/labelled",
        inbox="/srv/inbox",
        output="/srv/outbox/scores.csv",
        gate=Gate(
            margin=0.01, min_dataset_accuracy=0.8, max_reject_rate=0.02, min_negatives_rejected=0.8
        ),
        retrain_cron="0 4 * * 2",
    )
    filled = service.deployment_spec(spec, options)
    deployments = {d["name"]: d for d in filled["deployments"]}
    training, scoring = requests_of(deployments)
    assert (training, scoring) == (options.training, options.scoring)
    assert deployments["retrain"]["schedules"] == [
        {"cron": "0 4 * * 2", "timezone": "UTC", "active": True}
    ]
    from prefect.events import DeploymentEventTrigger

    (raw,) = deployments["score-inbox"]["triggers"]
    assert raw.pop("type") == "event"
    trigger = DeploymentEventTrigger.model_validate(raw)
    assert trigger.match.root["softmax-pipe.registry"] == "s3://team/models"  # type: ignore[union-attr]
    for name, d in deployments.items():
        original = {x["name"]: x for x in spec["deployments"]}[name]
        for key in ("entrypoint", "work_pool", "tags", "description"):
            assert d[key] == original[key]
    assert filled["pull"] == spec["pull"]


def test_the_yaml_is_what_deploy_registers_for_the_docker_stack() -> None:
    """With compose's register command (the docker stack's locations and --request), deploy
    registers exactly what prefect.yaml states: `prefect deploy` by hand and `softmax-pipe
    deploy` in the stack agree."""
    from prefect.events import DeploymentEventTrigger

    spec = prefect_yaml()
    filled = service.deployment_spec(spec, docker_options())
    mine = {d["name"]: d for d in filled["deployments"]}
    theirs = {d["name"]: d for d in spec["deployments"]}
    assert requests_of(mine) == requests_of(theirs)
    for name in theirs:
        assert mine[name]["schedules"] == theirs[name]["schedules"]
        for a, b in zip(
            mine[name].get("triggers", []), theirs[name].get("triggers", []), strict=True
        ):
            assert DeploymentEventTrigger.model_validate(
                {k: v for k, v in a.items() if k != "type"}
            ) == DeploymentEventTrigger.model_validate({k: v for k, v in b.items() if k != "type"})


def test_bad_cron_is_a_usage_error() -> None:
    from softmax_core.errors import InvalidInputError

    options = service.ServeOptions.build(retrain_cron="61 * * * *")
    with pytest.raises(InvalidInputError, match=r"--retrain-cron cron '61 \* \* \* \*'"):
        service.served_deployments(options)


# --- the crash automation ------------------------------------------------------------------------


def test_crash_automation_is_valid_and_scoped(deployments: dict[str, dict[str, Any]]) -> None:
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore

    path = DEPLOY / "automations" / "crash-zombie-flow-runs.yaml"
    automation = AutomationCore.model_validate(yaml.safe_load(path.read_text()))
    trigger: Any = automation.trigger
    assert trigger.posture == "Proactive"
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert {"prefect.flow-run.Completed", "prefect.flow-run.Failed"} <= trigger.expect
    (action,) = automation.actions
    assert isinstance(action, ChangeFlowRunState)
    assert action.state.value == "CRASHED"
    # only our runs: other flows on the server may beat every 180 s (Prefect's default)
    related = trigger.match_related
    related = related[0] if isinstance(related, list) else related
    assert related.model_dump() == {
        "prefect.resource.role": "tag",
        "prefect.resource.id": [f"prefect.tag.{service.TAG}"],
    }
    # every run of ours carries the tag and beats every 30 s, well inside the window
    beat = str(service.HEARTBEAT_SECONDS)
    for d in deployments.values():
        assert service.TAG in d["tags"]
        assert d["work_pool"]["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == beat
    assert f"PREFECT_FLOWS_HEARTBEAT_FREQUENCY={beat}" in dockerfile()
    assert trigger.within >= timedelta(seconds=3 * service.HEARTBEAT_SECONDS)


# --- Dockerfile, pins, secrets ---------------------------------------------------------------------


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def test_dockerfile_is_pinned_and_non_root() -> None:
    text = dockerfile()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base[1])
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    last_from = max(m.start() for m in re.finditer(r"^FROM ", text, re.M))
    assert text.index(f"USER {users[-1]}") > last_from
    assert "--constraint /tmp/constraints.txt" in text
    assert not re.search(r"^ENV .*(SECRET|PASSWORD|ACCESS_KEY)", text, re.M | re.I)
    assert re.search(r"^ENV SOFTMAX_PIPE_PROJECT_DIR=/app", text, re.M)
    assert "WORKDIR /app" in text


def test_prefect_version_is_the_same_everywhere(spec: dict[str, Any]) -> None:
    pins = dict(
        line.split("==")
        for line in (DEPLOY / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    server_image = compose["services"]["prefect-server"]["image"]
    assert spec["prefect-version"] == pins["prefect"]
    assert server_image == f"prefecthq/prefect:{pins['prefect']}-python3.11"
    for name, svc in compose["services"].items():  # every third-party image pinned
        image = svc["image"]
        if "build" in svc:
            continue  # ours, built from this checkout
        assert not image.endswith(":latest") and re.search(r":[\w.-]*\d", image), (name, image)


def test_secrets_stay_out_of_git() -> None:
    compose = (DEPLOY / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", compose))
    defaulted = set(re.findall(r"\$\{(\w+):-", compose))
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert required and required | defaulted <= set(example)  # the example covers them all
    ignored = (DEPLOY / ".gitignore").read_text().splitlines()
    assert ".env" in ignored  # deploy/.env, never committed
    # no literal secret: every *PASSWORD/*SECRET* key takes its value from the env file
    literal = re.findall(r"^\s+(\w*(?:PASSWORD|SECRET)\w*):\s+(?!\$\{)\S.*$", compose, re.M)
    assert not literal, literal


# --- docker-compose config ---------------------------------------------------------------------


def compose_command() -> list[str]:
    """docker-compose (Debian's package parses files offline) or the docker compose plugin."""
    if exe := shutil.which("docker-compose"):
        return [exe]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    pytest.fail(
        f"no docker-compose to validate deploy/docker-compose.yml; install it: {COMPOSE_INSTALL}"
    )


def compose_config(env_file: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [
            *compose_command(),
            "--env-file",
            env_file,
            "-f",
            str(DEPLOY / "docker-compose.yml"),
            "config",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ports(svc: dict[str, Any]) -> list[str]:
    out = []
    for p in svc.get("ports", []):
        out.append(p if isinstance(p, str) else f"{p.get('host_ip')}:{p['published']}")
    return out


def example_env() -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )


def fresh_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An env file with every secret set to a new random value (as a user's deploy/.env)."""
    import secrets

    values = {**example_env(), **{name: secrets.token_hex(20) for name in SECRETS}}
    path = tmp_path / "fresh.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path, values


def test_compose_file_validates(tmp_path: Path) -> None:
    env_file, values = fresh_env(tmp_path)
    done = compose_config(str(env_file))
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    services = config["services"]
    assert set(services) == SERVICES
    assert not any("minio" in str(svc.get("image", "")) for svc in services.values())
    seaweed = services["seaweedfs"]
    assert re.fullmatch(r"chrislusf/seaweedfs:\d+\.\d+", seaweed["image"])
    assert seaweed["healthcheck"]["test"][:2] == ["CMD", "wget"]
    assert "/healthz" in seaweed["healthcheck"]["test"][-1]
    bucket = services["create-bucket"]
    assert bucket["depends_on"]["seaweedfs"]["condition"] == "service_healthy"
    assert bucket["restart"] == "no" and bucket["environment"]["BUCKET"] == "softmax-models"
    worker = services["worker"]
    assert worker["depends_on"]["create-bucket"]["condition"] == ("service_completed_successfully")
    assert worker["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    env = worker["environment"]
    assert env["AWS_ENDPOINT_URL"] == "http://seaweedfs:8333"
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert env["SOFTMAX_PIPE_REGISTRY"] == registry_of(prefect_yaml())
    assert env["AWS_ACCESS_KEY_ID"] == values["S3_WORKER_ACCESS_KEY"]  # from the env file
    assert env["AWS_SECRET_ACCESS_KEY"] == values["S3_WORKER_SECRET_KEY"]
    assert worker["build"]["dockerfile"].endswith("Dockerfile")
    register = services["register"]["command"]
    assert register[:2] == ["softmax-pipe", "deploy"]
    params = deploy_params(register[2:])  # the locations prefect.yaml states: the worker's
    training, scoring = requests_of({d["name"]: d for d in prefect_yaml()["deployments"]})
    assert params["registry"] == training.target.location.registry == env["SOFTMAX_PIPE_REGISTRY"]
    assert (params["labelled"], params["inbox"]) == (training.data.inbox, scoring.input)
    assert params["output"] == scoring.output.path
    for svc in services.values():  # nothing published beyond loopback
        assert all(p.startswith("127.0.0.1:") for p in _ports(svc)), _ports(svc)


def test_only_the_s3_api_is_on_the_network(tmp_path: Path) -> None:
    """SeaweedFS's master, volume server, filer and the S3 gateway's gRPC port take requests
    without a key: start.sh binds every port to the container's loopback, and the network
    (the worker's endpoint, the published port) reaches the S3 gateway's HTTP port alone,
    through the `s3` proxy in seaweedfs's network namespace; create-bucket's shell runs in
    that namespace too. tests/flows/test_deploy_seaweedfs.py checks the binding live."""
    env_file, _ = fresh_env(tmp_path)
    services = yaml.safe_load(compose_config(str(env_file)).stdout)["services"]
    flags = dict(re.findall(r"\s-([\w.]+)=(\S+)", (DEPLOY / "seaweedfs" / "start.sh").read_text()))
    assert flags["ip"] == flags["ip.bind"] == "127.0.0.1"
    assert not [f for f in flags if f.endswith(("ip.bind", "Ip")) and f != "ip.bind"], flags
    inner = flags["s3.port"]
    proxy = services["s3"]
    assert proxy["network_mode"] == services["create-bucket"]["network_mode"] == "service:seaweedfs"
    assert proxy["entrypoint"] == [
        "socat",
        "TCP-LISTEN:8333,fork,reuseaddr",
        f"TCP:127.0.0.1:{inner}",
    ]
    assert proxy["depends_on"]["seaweedfs"]["condition"] == "service_healthy"
    assert "127.0.0.1:8333/healthz" in proxy["healthcheck"]["test"][-1]
    assert f"127.0.0.1:{inner}/healthz" in services["seaweedfs"]["healthcheck"]["test"][-1]
    (published,) = _ports(services["seaweedfs"])  # the proxy's port, on the host's loopback
    assert re.fullmatch(r"127\.0\.0\.1:8333(:8333(/tcp)?)?", published), published
    worker = services["worker"]
    assert worker["depends_on"]["s3"]["condition"] == "service_healthy"
    assert worker["environment"]["AWS_ENDPOINT_URL"] == "http://seaweedfs:8333"
    assert proxy["image"] == worker["image"]
    assert re.search(r"apt-get install [^\n]*\bsocat\b", dockerfile())


def test_the_admin_and_approver_keys_stay_out_of_the_worker(tmp_path: Path) -> None:
    env_file, values = fresh_env(tmp_path)
    services = yaml.safe_load(compose_config(str(env_file)).stdout)["services"]
    for role in ("ADMIN", "APPROVER"):
        key = {values[f"S3_{role}_ACCESS_KEY"], values[f"S3_{role}_SECRET_KEY"]}
        holders = {
            name
            for name, svc in services.items()
            if key & set(map(str, svc.get("environment", {}).values()))
        }
        assert holders == {"check-env", "seaweedfs"}, role  # the check, and the server itself


def test_the_worker_is_a_trainer_and_the_approver_an_approver() -> None:
    """Issue 26, item 3: the identities file gives the worker exactly a trainer's rights
    (``registry.rights``, the README's SeaweedFS trainer), so its retrain requests; the
    approver identity an approver's."""
    from registry import rights

    spec = json.loads((DEPLOY / "seaweedfs" / "identities.json").read_text())
    actions = {i["name"]: i["actions"] for i in spec["identities"]}
    assert set(actions) == {"admin", "worker", "approver"}
    for name, role in (("worker", "trainer"), ("approver", "approver")):
        assert actions[name] == ["Read:softmax-models", "List:softmax-models"] + [
            f"Write:softmax-models/registry/{pattern}" for pattern in rights.ROLES[role]
        ], name


def test_prefect_api_needs_its_auth_string(tmp_path: Path) -> None:
    """Issue 27, item 3: the server requires basic auth; every client of it sends it."""
    env_file, values = fresh_env(tmp_path)
    services = yaml.safe_load(compose_config(str(env_file)).stdout)["services"]
    expected = f"admin:{values['PREFECT_AUTH_PASSWORD']}"
    assert services["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"] == expected
    clients = {n for n, svc in services.items() if "PREFECT_API_URL" in svc.get("environment", {})}
    assert clients == {"register", "worker"}
    for name in clients:
        assert services[name]["environment"]["PREFECT_API_AUTH_STRING"] == expected, name
    # the names are Prefect's own settings
    from prefect.settings import Settings

    server = {"api": {"auth_string": "a:b"}}  # pydantic builds the ServerSettings
    server_auth = Settings(server=server).server.api.auth_string  # type: ignore[arg-type]
    assert server_auth is not None and server_auth.get_secret_value() == "a:b"
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_SERVER_API_AUTH_STRING

    assert (PREFECT_API_AUTH_STRING.name, PREFECT_SERVER_API_AUTH_STRING.name) == (
        "PREFECT_API_AUTH_STRING",
        "PREFECT_SERVER_API_AUTH_STRING",
    )


def test_every_service_waits_for_the_secrets_check(tmp_path: Path) -> None:
    """Issue 27, item 4: nothing starts before check-env has passed."""
    env_file, _ = fresh_env(tmp_path)
    services = yaml.safe_load(compose_config(str(env_file)).stdout)["services"]

    def waits_for_check(name: str, seen: frozenset[str] = frozenset()) -> bool:
        deps = services[name].get("depends_on", {})
        if deps.get("check-env", {}).get("condition") == "service_completed_successfully":
            return True
        return any(waits_for_check(d, seen | {name}) for d in deps if d not in seen)

    assert all(waits_for_check(n) for n in SERVICES - {"check-env"})
    check = services["check-env"]
    assert check["restart"] == "no" and set(SECRETS) <= set(check["environment"])


def run_check_env(values: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """deploy/check-env.sh under a POSIX sh, with ``values`` as its environment."""
    return subprocess.run(
        ["sh", str(DEPLOY / "check-env.sh"), str(DEPLOY / ".env.example")],
        env={"PATH": os.environ["PATH"], **values},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_env_refuses_the_examples_values(tmp_path: Path) -> None:
    """Issue 27, item 4: copying .env.example unchanged (the README's first step) no longer
    runs the object store with publicly known keys."""
    done = run_check_env(example_env())
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert [line.split(":")[1].split()[0] for line in lines] == list(SECRETS), done.stderr
    assert all("still the value in deploy/.env.example" in line for line in lines)
    _, values = fresh_env(tmp_path)
    done = run_check_env(values)
    assert done.returncode == 0, done.stderr
    for bad, why in (("", "is empty"), ("short", "16-128 characters"), ("a" * 20 + '"x', "16-128")):
        done = run_check_env({**values, "S3_WORKER_SECRET_KEY": bad})
        assert done.returncode != 0 and why in done.stderr, (bad, done.stderr)
    # the variables it checks are the example's secrets, every one
    named = re.findall(
        r"^(\w*(?:_KEY|SECRET|PASSWORD)\w*)=", (DEPLOY / ".env.example").read_text(), re.M
    )
    assert tuple(named) == SECRETS


def test_compose_refuses_to_start_without_the_env_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = compose_config(str(empty))
    assert done.returncode != 0
    assert "deploy/.env" in done.stderr and any(n in done.stderr for n in SECRETS), done.stderr
