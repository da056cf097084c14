"""Rights live where the bytes live: the README's policies, held to ``registry.rights`` and
to the keys the operations really write, and run on a real S3 server.

- The SeaweedFS identities of the README start a real SeaweedFS (with STS, so the history
  names ARNs): the trainer's key publishes and requests, its promote exits 77 in one line,
  the approver's key approves, and ``registry history --json`` names both.
- The AWS IAM and MinIO documents are evaluated, with IAM's rules (``*`` matches any
  characters, an explicit Deny wins, ``Null`` conditions), against every request the
  trainer's and the approver's operations send, recorded from a real registry.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from registry import Registry, layout, rights
from registry.check import check_store
from registry.store import ObjectInfo, Store
from softmax_core import settings
from softmax_core.errors import PermissionDeniedError
from tests.registry.helpers import DelegatingStore, make_model
from tests.s3server import S3Identity, SeaweedFS, admin_identity

ROOT = Path(__file__).resolve().parents[2]
BUCKET, PREFIX = "softmax-models", "registry"  # the README's


def readme_section(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]


def json_blocks() -> list[Any]:
    """The Rights section's JSON blocks: SeaweedFS identities, AWS trainer, AWS approver,
    MinIO trainer, MinIO approver."""
    blocks = re.findall(r"```json\n(.*?)```", readme_section("Rights: who may move an alias"), re.S)
    return [json.loads(b) for b in blocks]


# --- the roles ----------------------------------------------------------------------------


def test_roles_by_prefix() -> None:
    assert rights.may_write("trainer", "models/mnist/versions/00000003.json")
    assert rights.may_write("trainer", "models/mnist/requests/000000000001.json")
    assert not rights.may_write("trainer", "models/mnist/aliases/champion.json")
    assert not rights.may_write("trainer", "models/mnist/decisions/000000000001.json")
    assert rights.may_write("approver", "models/mnist/aliases/champion.log/000000000002.json")
    assert not rights.may_write("approver", "blobs/sha256/" + "a" * 64 + ".npz")
    assert rights.prefix_of("models/mnist/aliases/champion.json") == "models/mnist/aliases/"
    for role in ("trainer", "approver"):  # registry check's scratch, before a first write
        assert rights.may_write(role, "checks/0123abcd/absent-1.json")
    assert rights.prefix_of("checks/0123abcd/absent-1.json") == "checks/"
    assert rights.prefix_of("blobs/sha256/x.npz") == "blobs/"
    assert rights.prefix_of("datasets/inbox/versions/00000001.json") == "datasets/"
    assert rights.holders("models/m/aliases/a.json") == "an approver"
    assert rights.holders("models/m/versions/00000001.json") == "a trainer"
    assert rights.holders("monitoring/m/profiles/000000000001.json") == "a trainer"
    assert rights.holders("elsewhere/x.json") == "an administrator"


def test_a_permission_error_keeps_its_fields_across_processes() -> None:
    import pickle

    e = PermissionDeniedError(
        "no", key="models/m/aliases/a.json", write=True, reason="AccessDenied", hint="ask"
    )
    back = pickle.loads(pickle.dumps(e))
    assert (str(back), back.key, back.write, back.reason, back.hint, back.exit_code) == (
        "no",
        "models/m/aliases/a.json",
        True,
        "AccessDenied",
        "ask",
        77,
    )


def test_a_folder_refusal_names_the_folder_s_rights_not_a_key(tmp_path: Path) -> None:
    """A local registry has no keys: a refused write says the folder's owner and mode
    decide, where an S3 refusal names the role whose key may write there."""
    from registry.local import LocalStore

    store = LocalStore(str(tmp_path / "reg"))
    folder = store._io_error(
        "write", "blobs/ab", PermissionError(errno.EACCES, "Permission denied")
    )
    assert isinstance(folder, PermissionDeniedError)
    said = str(rights.denied(folder, "publishing digits", uri=store.uri))
    assert said == (
        f"publishing digits needs write access to blobs/ in {store.uri} (denied: Permission "
        "denied); the folder's owner and mode decide who may write it, not a key"
    )
    bucket = PermissionDeniedError("no", key="blobs/ab", write=True, reason="AccessDenied")
    said = str(rights.denied(bucket, "publishing digits", uri="s3://b/reg"))
    assert said.endswith("; it takes the key of a trainer (see the README's Rights)")


# --- what the operations write, and whether the README's policies let them ----------------


@dataclass(frozen=True)
class Request:
    """One S3 request an operation sends: ``action`` (IAM's), the object key or, for a
    listing, the prefix, and whether the PUT carried If-None-Match / If-Match."""

    action: str
    key: str
    if_none_match: bool = False
    if_match: bool = False


class Recording(DelegatingStore):
    """Records every request (as IAM sees it) sent through it."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.sent: list[Request] = []

    def get(self, key: str) -> tuple[bytes, str]:
        self.sent.append(Request("s3:GetObject", key))
        return self.inner.get(key)

    def head(self, key: str) -> ObjectInfo | None:
        self.sent.append(Request("s3:GetObject", key))
        return self.inner.head(key)

    def get_many(self, keys: Any) -> Any:
        self.sent.extend(Request("s3:GetObject", k) for k in keys)
        return self.inner.get_many(keys)

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        self.sent.append(Request("s3:PutObject", key, if_none_match, if_match is not None))
        return self.inner.put(key, data, if_none_match=if_none_match, if_match=if_match)

    def delete(self, key: str) -> None:
        self.sent.append(Request("s3:DeleteObject", key))
        self.inner.delete(key)

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        self.sent.append(Request("s3:ListBucket", prefix))
        return self.inner.list_info(prefix)

    def list_keys(self, prefix: str) -> Iterator[str]:
        self.sent.append(Request("s3:ListBucket", prefix))
        return self.inner.list_keys(prefix)

    def children(self, prefix: str) -> Iterator[str]:
        self.sent.append(Request("s3:ListBucket", prefix))
        return self.inner.children(prefix)


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Request]]:
    """Every request of each role's operations on a folder registry: the trainer publishes
    101 versions (an index page), a report, a dataset version and a request; the approver
    approves, promotes, rolls back and rejects; each runs the registry check."""
    from softmax_core.labelled import read_folder
    from tests.printed_digits import write_printed

    tmp = tmp_path_factory.mktemp("rights")
    store = Recording(Registry.open(str(tmp / "reg"), cache_dir=tmp / "c").store)
    reg = Registry(store, cache_dir=tmp / "c")
    for seed in range(1, 102):
        reg.publish(make_model(seed), "mnist")
    reg.put_report("mnist", 101, "<html></html>", confusion_png=b"\x89PNG")
    reg.add_dataset("inbox", read_folder(write_printed(tmp / "printed", 2, seed=3)).data)
    reg.request("mnist", 100, "champion", by="alice")
    reg.request("mnist", 101, "champion")
    reg.request("mnist", 99, "champion")
    check_store(store, racers=2)  # what an S3 registry runs before each key's first write
    trainer, store.sent = store.sent, []
    check_store(store, racers=2)
    reg.reject("mnist", 99, "champion")  # before the approvals, which close it as superseded
    reg.approve("mnist", 100, "champion", force=True, by="bob")
    reg.approve("mnist", 101, "champion")
    reg.promote("mnist", 99, "staging")
    reg.promote("mnist", 100, "staging")
    reg.rollback("mnist", "staging")
    approver = store.sent
    return {"trainer": trainer, "approver": approver}


def _match(patterns: str | list[str], value: str) -> bool:
    return any(
        fnmatch.fnmatchcase(value, p)
        for p in ([patterns] if isinstance(patterns, str) else patterns)
    )


def _condition_holds(condition: dict[str, Any], request: Request) -> bool:
    context = {
        "s3:prefix": f"{PREFIX}/{request.key}" if request.action == "s3:ListBucket" else None
    }
    if request.if_none_match:
        context["s3:if-none-match"] = "*"
    if request.if_match:
        context["s3:if-match"] = "etag"
    for operator, tests in condition.items():
        for key, expected in tests.items():
            if operator == "Null":
                absent = context.get(key) is None
                if absent != (expected == "true"):
                    return False
            elif operator == "StringLike":
                value = context.get(key)
                if value is None or not _match(expected, value):
                    return False
            else:
                raise AssertionError(f"the evaluator does not know {operator}")
    return True


def iam_allows(policy: dict[str, Any], request: Request) -> bool:
    """IAM's evaluation of one identity policy: an explicit Deny wins, then an Allow."""
    if request.action == "s3:ListBucket":
        resource = f"arn:aws:s3:::{BUCKET}"
    else:
        resource = f"arn:aws:s3:::{BUCKET}/{PREFIX}/{request.key}"
    verdicts = []
    for statement in policy["Statement"]:
        if (
            _match(statement["Action"], request.action)
            and _match(statement["Resource"], resource)
            and _condition_holds(statement.get("Condition", {}), request)
        ):
            verdicts.append(statement["Effect"])
    return "Deny" not in verdicts and "Allow" in verdicts


def seaweed_allows(identity: dict[str, Any], request: Request) -> bool:
    """SeaweedFS's rule: ``Action:bucket[/pattern]``, ``*`` matching anything."""
    kind = {"s3:GetObject": "Read", "s3:ListBucket": "List"}.get(request.action, "Write")
    target = BUCKET if kind == "List" else f"{BUCKET}/{PREFIX}/{request.key}"
    for action in identity["actions"]:
        name, _, scope = action.partition(":")
        if name == kind and (fnmatch.fnmatchcase(target, scope) or (scope == BUCKET)):
            return True
    return False


@pytest.fixture(scope="module")
def policies() -> dict[str, dict[str, Any]]:
    seaweed, aws_trainer, aws_approver, minio_trainer, minio_approver = json_blocks()
    by_name = {i["name"]: i for i in seaweed["identities"]}
    return {
        "seaweed trainer": by_name["trainer"],
        "seaweed approver": by_name["approver"],
        "aws trainer": aws_trainer,
        "aws approver": aws_approver,
        "minio trainer": minio_trainer,
        "minio approver": minio_approver,
    }


def _allows(kind: str, policy: dict[str, Any], request: Request) -> bool:
    return seaweed_allows(policy, request) if kind == "seaweed" else iam_allows(policy, request)


@pytest.mark.slow  # the recording: 101 publishes, a dataset, requests, moves
@pytest.mark.parametrize("kind", ["seaweed", "aws", "minio"])
@pytest.mark.parametrize("role", ["trainer", "approver"])
def test_each_role_may_send_every_request_of_its_operations(
    kind: str, role: str, policies: dict[str, dict[str, Any]], sent: dict[str, list[Request]]
) -> None:
    policy = policies[f"{kind} {role}"]
    refused = sorted({r for r in sent[role] if not _allows(kind, policy, r)}, key=repr)
    assert refused == [], f"the README's {kind} {role} policy refuses what a {role} sends"


@pytest.mark.parametrize("kind", ["seaweed", "aws", "minio"])
@pytest.mark.slow
def test_neither_role_may_write_what_the_other_writes(
    kind: str, policies: dict[str, dict[str, Any]], sent: dict[str, list[Request]]
) -> None:
    """The trainer can write no alias or decision (not even with the right headers); the
    approver can write no blob, version, request or dataset."""
    writes = [r for role in sent for r in sent[role] if r.action != "s3:GetObject"]
    writes = [r for r in writes if r.action != "s3:ListBucket"]
    for request in writes:
        for role in ("trainer", "approver"):
            allowed = _allows(kind, policies[f"{kind} {role}"], request)
            assert allowed == rights.may_write(role, request.key), (kind, role, request)


def test_on_aws_a_trainer_cannot_rewrite_a_record(policies: dict[str, dict[str, Any]]) -> None:
    """A plain PUT over a published manifest, a request or a dataset version is denied by
    the trainer's policy (``s3:if-none-match``); a report page is not a record."""
    trainer = policies["aws trainer"]
    for key in (
        layout.manifest_key("mnist", 3),
        layout.request_key("mnist", 1),
        layout.dataset_manifest_key("inbox", 2),
    ):
        assert not iam_allows(trainer, Request("s3:PutObject", key))
        assert iam_allows(trainer, Request("s3:PutObject", key, if_none_match=True))
    assert iam_allows(trainer, Request("s3:PutObject", layout.report_key("mnist", 3)))
    # a key "under" an alias, which SeaweedFS's Write:.../models/*/versions/* would allow
    stray = "models/mnist/aliases/champion.json/versions/x"
    assert seaweed_allows(policies["seaweed trainer"], Request("s3:PutObject", stray))
    assert not iam_allows(trainer, Request("s3:PutObject", stray, if_none_match=True))
    assert not iam_allows(policies["minio trainer"], Request("s3:PutObject", stray))
    approver = policies["aws approver"]
    assert not iam_allows(approver, Request("s3:PutObject", layout.alias_key("mnist", "c")))


def test_the_seaweedfs_identities_are_the_roles_patterns(
    policies: dict[str, dict[str, Any]],
) -> None:
    for role, patterns in rights.ROLES.items():
        actions = policies[f"seaweed {role}"]["actions"]
        assert actions == [f"Read:{BUCKET}", f"List:{BUCKET}"] + [
            f"Write:{BUCKET}/{PREFIX}/{p}" for p in patterns
        ]


def test_the_minio_policies_fit_minio(policies: dict[str, dict[str, Any]]) -> None:
    """Under the 2048 characters ``mc admin policy create`` takes, and no condition key
    we could not check in MinIO's documentation."""
    for role in ("trainer", "approver"):
        policy = policies[f"minio {role}"]
        assert len(json.dumps(policy)) < 2048
        assert all("Condition" not in s for s in policy["Statement"])


# --- on a real SeaweedFS, with the README's identities ------------------------------------


@pytest.fixture(scope="module")
def rights_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """SeaweedFS with STS and the README's trainer and approver (fresh keys), and the bucket."""
    (seaweed, *_) = json_blocks()
    people = [
        S3Identity(i["name"], tuple(i["actions"]), access_key=f"AK{i['name'].upper()}0TEST")
        for i in seaweed["identities"]
    ]
    admin = admin_identity()
    with SeaweedFS(tmp_path_factory.mktemp("rights-s3"), [admin, *people], sts=True) as server:
        client = admin.client(server.endpoint)
        client.create_bucket(Bucket=BUCKET)
        client.close()
        yield server


def softmax_pipe(
    server: SeaweedFS, who: str, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """The installed console script, with ``who``'s key, as that person would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SOFTMAX_PIPE_"))}
    env.update(server.identity(who).env(server.endpoint))
    env[settings.ENV_REGISTRY] = f"s3://{BUCKET}/{PREFIX}"
    env[settings.ENV_CACHE] = str(cwd / f"cache-{who}")
    env["PREFECT_HOME"] = str(cwd / "prefect")  # no profile naming a Prefect API
    exe = Path(sys.executable).parent / "softmax-pipe"
    return subprocess.run(
        [str(exe), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_a_trainer_publishes_and_requests_an_approver_approves(
    rights_server: SeaweedFS, tmp_path: Path
) -> None:
    """The issue's "done when", on the real server: the trainer's promote exits 77 in one
    line, its request and the approver's approve move the alias, the history names both."""
    server = rights_server
    make_model(1).save(tmp_path / "m.npz")

    def run(who: str, *args: str) -> subprocess.CompletedProcess[str]:
        return softmax_pipe(server, who, *args, cwd=tmp_path)

    done = run("trainer", "registry", "publish", "m.npz", "--name", "digits")
    assert done.returncode == 0, done.stderr

    done = run("trainer", "registry", "promote", "digits:1", "champion")
    assert done.returncode == 77, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: promoting digits:1 to champion needs write access to models/digits/aliases/ "
        f"in s3://{BUCKET}/{PREFIX} (denied: AccessDenied); request it with "
        "`softmax-pipe registry request digits:1 champion`, then an approver runs "
        "`softmax-pipe registry approve digits:1 champion`"
    ]
    trainer, approver = server.identity("trainer"), server.identity("approver")
    for secret in (trainer.secret_key, trainer.access_key):
        assert secret not in done.stderr

    done = run("trainer", "registry", "request", "digits:1", "champion", "--comment", "weekly")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("requested #1 digits@champion -> digits:1;")
    done = run("trainer", "registry", "approve", "digits:1", "champion")  # not a trainer's
    assert done.returncode == 77, done.stderr
    assert "needs write access to models/digits/decisions/" in done.stderr

    done = run("approver", "registry", "requests", "digits", "--json")
    assert done.returncode == 0, done.stderr
    (open_request,) = json.loads(done.stdout)
    assert open_request["requested_by"]["identity"] == "arn:aws:iam::000000000000:user/trainer"
    done = run("approver", "registry", "approve", "digits:1", "champion", "--by", "bob")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("digits@champion -> digits:1")

    done = run("approver", "registry", "history", "digits@champion", "--json")
    assert done.returncode == 0, done.stderr
    (move,) = json.loads(done.stdout)
    assert move["action"] == "approve" and move["version"] == 1
    assert move["actor"] == {
        "identity": "arn:aws:iam::000000000000:user/approver",
        "source": "sts",
        "by": "bob",
    }
    assert move["request"]["requested_by"] == {
        "identity": "arn:aws:iam::000000000000:user/trainer",
        "source": "sts",
        "by": None,
    }
    assert move["request"]["comment"] == "weekly"
    assert approver.secret_key not in done.stdout

    done = run("trainer", "registry", "show", "digits@champion")  # a trainer reads it all
    assert done.returncode == 0 and "digits:1" in done.stdout


def test_without_sts_the_history_names_the_access_key_id(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The session server has no STS (it answers 503): the key id, never the secret."""
    from tests.conftest import S3_ADMIN, use_s3_identity

    use_s3_identity(monkeypatch, S3_ADMIN, s3_endpoint)
    with Registry.open(f"s3://{s3_bucket}/r", cache_dir=tmp_path) as reg:
        reg.publish(make_model(1), "digits")
        record = reg.promote("digits", 1, "champion", by="ops").record
    assert record.actor is not None
    assert (record.actor.identity, record.actor.source) == (S3_ADMIN.access_key, "access-key")
    assert S3_ADMIN.secret_key not in record.to_bytes().decode()


def test_the_caller_is_asked_once_per_endpoint_and_key_in_a_process(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flow's tasks each open a store: STS is asked once per endpoint and key, not once
    per store (on an endpoint whose STS does not answer, each ask waits its timeout)."""
    import boto3

    from registry import s3
    from tests.conftest import S3_ADMIN, S3_USER, use_s3_identity

    asked: list[str] = []
    client: Any = boto3.session.Session.client

    def counting(self: Any, service: str, *args: Any, **kwargs: Any) -> Any:
        if service == "sts":
            asked.append(service)
        return client(self, service, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", counting)
    monkeypatch.setattr(s3, "_IDENTITIES", {})
    for identity, answers in ((S3_ADMIN, 1), (S3_USER, 2)):
        use_s3_identity(monkeypatch, identity, s3_endpoint)
        for _ in range(3):
            store = s3.S3Store("any-bucket", "r", endpoint_url=s3_endpoint)
            assert store.identity().name == identity.access_key
            store.close()
        assert len(asked) == answers


@pytest.mark.slow
def test_on_seaweedfs_a_key_under_an_alias_blocks_it(
    rights_server: SeaweedFS, tmp_path: Path
) -> None:
    """What the README says of SeaweedFS: the trainer's ``models/*/versions/*`` lets it
    write a key below an alias record's name, and then the alias cannot be created (a
    denial of service, not a move). If this fails, SeaweedFS changed: update the README."""
    trainer = rights_server.identity("trainer").client(rights_server.endpoint)
    approver = rights_server.identity("approver").client(rights_server.endpoint)
    base = f"{PREFIX}/models/blocked/aliases/champion.json"
    trainer.put_object(Bucket=BUCKET, Key=f"{base}/versions/x", Body=b"junk")
    with pytest.raises(approver.exceptions.ClientError) as e:
        approver.put_object(Bucket=BUCKET, Key=base, Body=b"{}", IfNoneMatch="*")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    trainer.close()
    approver.close()


@pytest.mark.slow
def test_a_source_the_key_may_not_read_is_named_not_the_registry(
    rights_server: SeaweedFS, tmp_path: Path
) -> None:
    """``dataset add s3://inbox/lab/`` with a trainer's key, which may read only the
    registry's bucket: the refusal names the source it could not list, not a prefix of the
    registry (it said 'needs read access to lab/ in s3://softmax-models/registry')."""
    admin = rights_server.identity("admin").client(rights_server.endpoint)
    admin.create_bucket(Bucket="inbox")
    admin.put_object(Bucket="inbox", Key="lab/3/a.png", Body=b"not read")
    admin.close()
    done = softmax_pipe(
        rights_server,
        "trainer",
        "dataset",
        "add",
        "s3://inbox/lab/",
        "--name",
        "mine",
        cwd=tmp_path,
    )
    assert done.returncode == 77, done.stderr
    (line,) = done.stderr.splitlines()
    assert "s3://inbox/lab/" in line and "AccessDenied" in line, line
    assert f"s3://{BUCKET}/{PREFIX}" not in line and "adding to dataset" not in line, line
