"""``softmax-pipe serve`` checks every path its scheduled runs will use when it starts
(flows.service.check_paths), not at the first run hours later."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from flows import service
from softmax_core.errors import (
    DataNotFoundError,
    InvalidInputError,
    PermissionDeniedError,
    StorageError,
)
from softmax_core.requests import Location
from softmax_pipe.cli import app
from tests.conftest import S3_ADMIN, S3_NOBODY, S3_SCOPED, use_s3_identity


def options(tmp_path: Path, **kwargs: Any) -> service.ServeOptions:
    where = Location(registry=kwargs.pop("registry", str(tmp_path / "reg")))
    defaults: dict[str, Any] = {
        "labelled": str(tmp_path / "labelled"),
        "inbox": str(tmp_path / "inbox"),
        "output": str(tmp_path / "outbox" / "scores.csv"),
    }
    return service.ServeOptions.build(location=where, **{**defaults, **kwargs})


def test_missing_folders_are_made_and_said(tmp_path: Path) -> None:
    said: list[str] = []
    service.check_paths(options(tmp_path), say=said.append)
    for folder in ("labelled", "inbox", "outbox"):
        assert (tmp_path / folder).is_dir()
    assert said == [
        f"made the labelled inbox {tmp_path / 'labelled'} (it did not exist)",
        f"made the inbox {tmp_path / 'inbox'} (it did not exist)",
        f"made the output folder {tmp_path / 'outbox'} (it did not exist)",
    ]
    said.clear()
    service.check_paths(options(tmp_path), say=said.append)  # all there now: silent
    assert said == []


@pytest.mark.parametrize(
    ("change", "error", "says"),
    [
        ("inbox-is-a-file", InvalidInputError, "inbox .*inbox is not a folder"),
        ("labelled-is-a-file", InvalidInputError, "inbox .*labelled.* is not a folder"),
        ("output-is-a-folder", InvalidInputError, "output .* is a folder"),
        ("registry-is-a-file", InvalidInputError, "is a file, not a registry folder"),
        ("mnist-missing", DataNotFoundError, "MNIST source .* not found"),
    ],
)
def test_a_bad_path_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, error: type, says: str
) -> None:
    if change == "inbox-is-a-file":
        (tmp_path / "inbox").write_text("")
    elif change == "labelled-is-a-file":
        (tmp_path / "labelled").write_text("")
    elif change == "output-is-a-folder":
        (tmp_path / "outbox" / "scores.csv").mkdir(parents=True)
    elif change == "registry-is-a-file":
        (tmp_path / "reg").write_text("")
    elif change == "mnist-missing":
        monkeypatch.setenv("SOFTMAX_PIPE_MNIST", str(tmp_path / "no-mnist"))
    with pytest.raises(error, match=says):
        service.check_paths(options(tmp_path), say=lambda _: None)


def test_an_unreachable_registry_fails_at_once(s3_env: str, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-serve' does not exist"):
        service.check_paths(options(tmp_path, registry="s3://no-such-bucket-serve/reg"))


def on_s3(tmp_path: Path, bucket: str) -> service.ServeOptions:
    return options(
        tmp_path,
        labelled=f"s3://{bucket}/lab/",
        inbox=f"s3://{bucket}/imgs/",
        output=f"s3://{bucket}/out/x.csv",
    )


def test_s3_inboxes_and_output_are_checked_on_s3_not_made_as_folders(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They were folders named ./s3:/BUCKET/..., made here, and S3 was never asked."""
    monkeypatch.chdir(tmp_path)
    said: list[str] = []
    service.check_paths(on_s3(tmp_path, s3_bucket), say=said.append)
    assert said == []
    assert not (tmp_path / "s3:").exists()
    client = S3_ADMIN.client(os.environ["AWS_ENDPOINT_URL"])
    try:  # the output's write check left nothing behind
        assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    finally:
        client.close()


def test_s3_paths_a_key_may_not_use_fail_at_once(
    s3_endpoint: str, scoped_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_s3_identity(monkeypatch, S3_NOBODY, s3_endpoint)  # may read nothing here
    with pytest.raises(PermissionDeniedError, match=f"denied list on s3://{scoped_bucket}/lab/"):
        service.check_paths(on_s3(tmp_path, scoped_bucket), say=lambda _: None)
    use_s3_identity(monkeypatch, S3_SCOPED, s3_endpoint)  # lists it; writes only under reg/
    with pytest.raises(
        PermissionDeniedError, match=r"denied put on s3://scoped-registry/out/x\.csv"
    ):
        service.check_paths(on_s3(tmp_path, scoped_bucket), say=lambda _: None)
    use_s3_identity(monkeypatch, S3_ADMIN, s3_endpoint)
    with pytest.raises(DataNotFoundError, match="bucket 'no-such-inbox-bucket' does not exist"):
        service.check_paths(on_s3(tmp_path, "no-such-inbox-bucket"), say=lambda _: None)
    assert not (tmp_path / "s3:").exists() and not Path("s3:").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_serve_refuses_a_bad_path_before_serving(tmp_path: Path) -> None:
    out = tmp_path / "outbox" / "scores.csv"
    out.mkdir(parents=True)
    result = CliRunner().invoke(
        app, ["serve", "--registry", str(tmp_path / "reg"), "--output", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert "is a folder; expected the CSV file to write" in result.stderr


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    "ending",
    [None, KeyboardInterrupt(), SystemExit(0)],
    ids=["returns", "interrupted", "prefect-sys-exit"],
)
def test_the_schedules_are_paused_however_serving_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: BaseException | None
) -> None:
    """Prefect's serve can end by sys.exit(0) (a SIGTERM while its runner stops), which skips
    whatever follows it; the schedules must be paused then too."""
    import prefect

    def fake_serve(*deployments: Any, **_: Any) -> None:  # registers, as prefect.serve does
        for d in deployments:
            d.apply()
        if ending is not None:
            raise ending

    monkeypatch.setattr(prefect, "serve", fake_serve)
    said: list[str] = []
    served = options(tmp_path, retrain_cron="0 4 * * 2")
    if ending is None:
        service.serve(served, say=said.append)
    else:
        with pytest.raises(type(ending)):
            service.serve(served, say=said.append)
    with get_client(sync_client=True) as client:
        for name in ("training-pipeline/retrain", "batch-scoring/score-inbox"):
            assert client.read_deployment_by_name(name).paused, name
    assert said[-1] == (
        "paused the schedules of training-pipeline/retrain, batch-scoring/score-inbox"
    )
