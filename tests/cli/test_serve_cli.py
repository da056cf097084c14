"""``softmax-pipe serve`` and ``deploy``: their refusals, invoked as a user would.

The commands' success paths need a Prefect server and run in test_e2e_deploy.py; here
the failures that must be clear and fast, each in a subprocess with a clean
environment (no PREFECT_API_URL from this test session or its profile).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "softmax-pipe")


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_"))}
    clean.update(
        {
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    return subprocess.run(
        [EXE, *args],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", ["serve", "deploy"])
def test_no_server_configured_is_a_usage_error(command: str, tmp_path: Path) -> None:
    done = run([command], tmp_path)
    assert done.returncode == 2, done
    assert "PREFECT_API_URL is not set" in done.stderr
    assert "prefect server start" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", ["serve", "deploy"])
def test_unreachable_server_is_a_network_failure(command: str, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/api"
    done = run([command], tmp_path, PREFECT_API_URL=url)
    assert done.returncode == 4, done
    assert f"the Prefect server at {url} is unreachable" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_rejects_a_bad_cron_before_anything_else(tmp_path: Path) -> None:
    done = run(["serve", "--cron", "61 * * * *"], tmp_path)
    assert done.returncode == 2, done
    assert "--retrain-cron cron '61 * * * *'" in done.stderr
    assert "expected five fields" in done.stderr


@pytest.mark.parametrize("command", ["serve", "deploy"])
def test_a_bad_timezone_is_a_usage_error_before_anything_else(command: str, tmp_path: Path) -> None:
    """It was Prefect's ValidationError, exit 70 (a bug), after serve said it was serving."""
    done = run([command, "--timezone", "Mars/Olympus"], tmp_path)
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines() == [
        "error: --timezone 'Mars/Olympus' is not a time zone; expected an IANA name such as "
        "'UTC', 'Europe/Paris' or 'America/New_York'"
    ]
    assert done.stdout == ""


def test_deploy_needs_the_checkout(tmp_path: Path) -> None:
    elsewhere = tmp_path / "not-a-checkout"
    elsewhere.mkdir()
    done = run(["deploy", "--project-dir", str(elsewhere)], tmp_path)
    assert done.returncode == 3, done
    assert f"{elsewhere / 'deploy' / 'prefect.yaml'} does not exist" in done.stderr


def test_help_lists_both_commands(tmp_path: Path) -> None:
    done = run(["--help"], tmp_path)
    assert done.returncode == 0
    assert "serve" in done.stdout and "deploy" in done.stdout
    serve_help = run(["serve", "--help"], tmp_path, COLUMNS="200")
    assert "0 3 * * 1" in serve_help.stdout and "--replace" in serve_help.stdout


def test_deploy_names_a_broken_prefect_yaml(tmp_path: Path) -> None:
    broken = tmp_path / "prefect.yaml"
    broken.write_text("deployments:\n  - entrypoint: flows/training.py:training_pipeline\n")
    done = run(["deploy", "--prefect-file", str(broken)], tmp_path)
    assert done.returncode == 2, done
    assert f"{broken} is not a prefect.yaml with named deployments" in done.stderr


@pytest.mark.parametrize("command", ["serve", "deploy"])
def test_the_options_become_the_scheduled_requests(command: str) -> None:
    """serve and deploy take the same options for what the runs do, into the same
    ServeOptions: the gate, the weighting, training, locations and crons."""
    import typer.main

    from softmax_pipe import cli_serve
    from softmax_pipe.cli import app

    args = [
        "--registry", "s3://team/models", "--labelled", "/srv/labelled", "--inbox", "/srv/in",
        "--output", "/srv/out.csv", "--margin", "0.01", "--min-dataset-accuracy", "0.8",
        "--alpha", "0.01", "--min-accuracy", "0.97", "--data-share", "0.2", "--epochs", "2",
        "--no-warm-start", "--retrain-cron", "0 4 * * 2", "--name", "digits", "--request",
        "--max-reject-rate", "0.02", "--min-negatives-rejected", "0.8",
    ]  # fmt: skip
    cmd = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    options = cli_serve._options(cmd.make_context(command, args).params)
    training, scoring = options.training, options.scoring
    assert training.target.location.registry == "s3://team/models"
    assert training.data.inbox == "/srv/labelled" and training.data.data_share == 0.2
    assert (scoring.input, scoring.output.path) == ("/srv/in", "/srv/out.csv")
    gate = training.gate
    assert (gate.margin, gate.min_dataset_accuracy, gate.alpha, gate.min_accuracy) == (
        0.01, 0.8, 0.01, 0.97,
    )  # fmt: skip
    assert (gate.max_reject_rate, gate.min_negatives_rejected) == (0.02, 0.8)
    assert training.hyper.epochs == 2 and not training.hyper.warm_start
    assert training.target.action == "request"
    assert options.retrain_cron == "0 4 * * 2" and scoring.model.ref == "digits@champion"


def test_serve_request_makes_retraining_request_instead_of_promoting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``serve --request``: the scheduled retrain's target asks an approver (a trainer's
    key); the scoring deployment is the same."""
    from typer.testing import CliRunner

    import flows.service
    from softmax_pipe.cli import app

    served: list[flows.service.ServeOptions] = []
    monkeypatch.setattr(flows.service, "serve", lambda options, **_: served.append(options))
    for args, action in ((["serve"], "promote"), (["serve", "--request"], "request")):
        result = CliRunner().invoke(app, [*args, "--registry", "s3://b/r"])
        assert result.exit_code == 0, result.output
        assert served[-1].training.target.action == action
        assert served[-1].scoring.model.ref == "mnist@champion"
