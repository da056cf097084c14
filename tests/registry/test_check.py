"""`registry check` and the check before a first write: it passes on the real S3 server and
a folder, fails in one line on a store that ignores conditional writes (a loopback proxy
in front of SeaweedFS that drops the headers), refuses writes there and still reads, and
runs once per store location (remembered in the local cache)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import Registry, open_store
from registry import check as store_check
from registry.check import CheckedStore, check_store
from registry.store import ObjectInfo, Store
from softmax_core.errors import PermissionDeniedError, StorageError
from tests.cli_invoke import invoke
from tests.conftest import S3_ADMIN, S3_SCOPED, use_s3_identity
from tests.registry.helpers import DelegatingStore, make_model
from tests.s3proxy import StrippingProxy


@pytest.fixture(autouse=True)
def check_before_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """This module is about the check: on, as for a user (tests/conftest.py turns it off)."""
    monkeypatch.delenv("SOFTMAX_PIPE_STORE_CHECK", raising=False)


@pytest.fixture
def no_if_none_match(s3_endpoint: str) -> Iterator[StrippingProxy]:
    """The session's SeaweedFS behind a proxy that drops If-None-Match."""
    with StrippingProxy(s3_endpoint, S3_ADMIN, strip=["If-None-Match"]) as proxy:
        yield proxy


def scratch_keys(store: Store) -> list[str]:
    return list(store.list_keys("checks/"))


# --- the check itself --------------------------------------------------------------------


@pytest.mark.slow  # the whole check on SeaweedFS: its races take seconds
def test_registry_check_passes_on_seaweedfs_and_cleans_up(s3_bucket: str, tmp_path: Path) -> None:
    uri = f"s3://{s3_bucket}/reg"
    code, out, err = invoke("registry", "check", "--registry", uri, "--cache-dir", tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == [
        "ok  only-if-absent",
        "ok  compare-and-swap",
        "ok  lost answer",
    ]
    assert "exactly 1 of 8 racing writers won" in lines[0]
    assert lines[3].startswith(f"checked {uri} in ")
    assert scratch_keys(open_store(uri)) == []  # nothing left behind
    (record,) = (tmp_path / "store-checks").iterdir()  # remembered for the first write
    assert json.loads(record.read_text())["uri"] == uri


def test_registry_check_passes_on_a_folder(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    code, out, err = invoke("registry", "check", "--registry", reg, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["passed"] and [p["name"] for p in result["probes"]] == [
        "only-if-absent",
        "compare-and-swap",
        "lost answer",
    ]
    assert scratch_keys(open_store(str(reg))) == []
    code, _, err = invoke("registry", "check", "--registry", reg)  # and once more
    assert code == 0, err
    assert not (reg / "checks").exists()  # no empty checks/<run id>/ folders either
    assert [p.name for p in reg.iterdir()] == [".~lock"]  # compare-and-swap's lock file


def test_a_store_ignoring_if_none_match_fails_in_one_line(
    no_if_none_match: StrippingProxy, s3_bucket: str, tmp_path: Path
) -> None:
    uri = f"s3://{s3_bucket}/reg"
    through = ("--endpoint-url", no_if_none_match.endpoint, "--cache-dir", tmp_path)
    code, out, err = invoke("registry", "check", "--registry", uri, *through)
    assert code == 4, err
    (line,) = err.splitlines()
    assert line.startswith(f"error: {uri} failed the registry check: only-if-absent: 8 of 8 ")
    assert "two publishers could claim the same version number" in line
    assert "FAILED  only-if-absent" in out
    assert no_if_none_match.stripped  # the proxy did drop the header
    assert scratch_keys(open_store(uri)) == []  # cleaned up, seen past the proxy
    assert not (tmp_path / "store-checks").exists() or not any(
        (tmp_path / "store-checks").iterdir()
    )  # a failure is not remembered as a pass


def test_a_store_ignoring_if_match_fails_on_compare_and_swap(
    s3_endpoint: str, s3_bucket: str
) -> None:
    with StrippingProxy(s3_endpoint, S3_ADMIN, strip=["If-Match"]) as proxy:
        result = check_store(open_store(f"s3://{s3_bucket}/reg", endpoint_url=proxy.endpoint))
    assert not result.ok
    names = {p.name: p.ok for p in result.probes}
    assert names == {"only-if-absent": True, "compare-and-swap": False, "lost answer": False}
    assert "compare-and-swap:" in result.failure() and "lost answer failed too" in result.failure()
    assert "\n" not in result.failure()


class LaggingReads(DelegatingStore):
    """Reads return what a key held before its last overwrite (reads that lag writes,
    as S3 itself did for overwrites before December 2020)."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.before: dict[str, tuple[bytes, str]] = {}

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        previous = self.inner.get(key) if self.inner.head(key) is not None else None
        etag = self.inner.put(key, data, if_none_match=if_none_match, if_match=if_match)
        if previous is not None:
            self.before[key] = previous
        return etag

    def get(self, key: str) -> tuple[bytes, str]:
        return self.before.get(key) or self.inner.get(key)


def test_reads_that_lag_writes_fail_the_check(tmp_path: Path) -> None:
    result = check_store(LaggingReads(open_store(str(tmp_path / "reg"))), racers=2)
    assert not result.ok
    assert result.failure().split(": ")[1:3] == [
        "compare-and-swap",
        "an update with the ETag just read was refused while no one else wrote (a read "
        "returned an older version) (lost answer failed too); two racing alias moves or "
        "dataset adds could overwrite each other and lose one. Writing there is refused",
    ]


class NoWrites(DelegatingStore):
    """Every write fails as an endpoint gone mid-run fails it (after boto3's retries);
    reads go through. Counts the writes asked for."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.puts: list[str] = []
        self.deletes: list[str] = []

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        self.puts.append(key)
        raise StorageError(f"cannot reach the S3 endpoint to write {key}")

    def delete(self, key: str) -> None:
        self.deletes.append(key)
        raise StorageError(f"cannot reach the S3 endpoint to delete {key}")


def test_a_store_taking_no_writes_is_told_after_one_write(tmp_path: Path) -> None:
    """Not after eight racers' writes (each retried by boto3, and again by each registry
    task retry: the e2e test's cut endpoint saw 81 PUTs for a bound of 9), and no delete
    of a key that was never written."""
    store = NoWrites(open_store(str(tmp_path / "reg")))
    with pytest.raises(StorageError, match="cannot reach the S3 endpoint"):
        check_store(store)
    assert len(store.puts) == 1 and store.puts[0].startswith("checks/"), store.puts
    assert store.deletes == []


class Unreachable(DelegatingStore):
    """An endpoint that never answers: every request fails after its retries (about 33 s
    each on a real one). Records each request asked for."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.asked: list[str] = []

    def _gone(self, op: str, key: str) -> StorageError:
        self.asked.append(f"{op} {key}")
        return StorageError(f"cannot reach the S3 endpoint for {op} {key} (ReadTimeoutError)")

    def get(self, key: str) -> tuple[bytes, str]:
        raise self._gone("get", key)

    def head(self, key: str) -> ObjectInfo | None:
        raise self._gone("head", key)

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        raise self._gone("put", key)

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        raise self._gone("list", prefix)

    def list_keys(self, prefix: str) -> Iterator[str]:
        raise self._gone("list", prefix)

    def delete(self, key: str) -> None:
        raise self._gone("delete", key)


def test_an_endpoint_that_never_answers_costs_one_request(tmp_path: Path) -> None:
    """README: a first write to such an endpoint fails after one request and its retries
    (~33 s). The clean-up's list, HEAD and delete, each with its retries too, made it
    ~2 min: after a first write that failed, nothing is cleaned up (nothing was written,
    or the store would not answer)."""
    store = Unreachable(open_store(str(tmp_path / "reg")))
    with pytest.raises(StorageError, match="cannot reach the S3 endpoint for put checks/"):
        check_store(store)
    assert [a.split()[0] for a in store.asked] == ["put"]


# --- before the first write ---------------------------------------------------------------


@pytest.mark.slow  # the whole check on SeaweedFS: its races take seconds
def test_a_failing_store_is_refused_for_writing_and_still_read(
    no_if_none_match: StrippingProxy, s3_bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    uri = f"s3://{s3_bucket}/reg"
    model = make_model(1).save(tmp_path / "m.npz")
    # published on the real server, then reached through the proxy
    assert invoke("registry", "publish", model, "--name", "digits", "--registry", uri)[0] == 0
    through = ("--registry", uri, "--endpoint-url", no_if_none_match.endpoint)
    code, out, err = invoke("registry", "publish", model, "--name", "digits", *through)
    assert code == 4, out + err
    (line,) = err.splitlines()
    assert (
        "failed the registry check: only-if-absent" in line and "Writing there is refused" in line
    )
    code, out, err = invoke("registry", "versions", "digits", *through, "--json")
    assert code == 0, err
    assert [v["version"] for v in json.loads(out)] == [1]  # read through the proxy; no 2nd
    code, out, err = invoke("registry", "pull", "digits:1", *through, "--out", tmp_path / "got.npz")
    assert code == 0, err
    assert (tmp_path / "got.npz").read_bytes() == model.read_bytes()


@pytest.mark.slow  # the whole check on SeaweedFS: its races take seconds
def test_the_check_runs_once_per_location(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[str] = []
    real = store_check.check_store

    def counted(store: Store, **kw: int) -> store_check.CheckResult:
        runs.append(store.uri)
        return real(store, racers=3)  # what is counted here is how often, not how hard

    monkeypatch.setattr(store_check, "check_store", counted)
    uri = f"s3://{s3_bucket}/reg"
    with Registry.open(uri, cache_dir=tmp_path / "a") as reg:
        assert isinstance(reg.store, CheckedStore)
        assert runs == []  # opening and reading check nothing
        assert reg.models() == []
        assert runs == []
        reg.publish(make_model(1), "digits")
        reg.publish(make_model(2), "digits")
        assert runs == [uri]  # once, before the first write
    with Registry.open(uri, cache_dir=tmp_path / "a") as reg:
        reg.publish(make_model(3), "digits")
    assert runs == [uri]  # remembered in the cache folder
    with Registry.open(f"s3://{s3_bucket}/other", cache_dir=tmp_path / "a") as reg:
        reg.publish(make_model(3), "digits")
    assert runs == [uri, f"s3://{s3_bucket}/other"]  # another location
    with Registry.open(uri, cache_dir=tmp_path / "b") as reg:
        reg.publish(make_model(4), "digits")
    assert len(runs) == 3  # another machine (cache) checks for itself
    store = CheckedStore(open_store(uri), cache_dir=tmp_path / "a", max_age=0.0)
    store.put("blobs/sha256/" + "0" * 64 + ".npz", b"x")
    assert len(runs) == 4  # a pass older than max_age is checked again
    assert scratch_keys(open_store(uri)) == []


def test_folders_are_not_checked_before_writing(tmp_path: Path) -> None:
    with Registry.open(str(tmp_path / "reg"), cache_dir=tmp_path / "cache") as reg:
        assert not isinstance(reg.store, CheckedStore)


def test_the_check_can_be_turned_off(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOFTMAX_PIPE_STORE_CHECK", "0")
    with Registry.open(f"s3://{s3_bucket}/reg", cache_dir=tmp_path) as reg:
        assert not isinstance(reg.store, CheckedStore)


def test_a_key_that_cannot_write_the_scratch_prefix_is_told_what_to_allow(
    scoped_bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_s3_identity(monkeypatch, S3_SCOPED, s3_endpoint)  # writes reg/blobs, reg/models/*/versions
    with (
        Registry.open(f"s3://{scoped_bucket}/reg", cache_dir=tmp_path) as reg,
        pytest.raises(PermissionDeniedError) as caught,  # exit 77 (issue 26), not 4
    ):
        reg.publish(make_model(1), "digits")
    message = str(caught.value)
    assert message.startswith("publishing digits: the registry check of ")
    assert "needs write access to checks/" in message
    assert "could not write its scratch prefix checks/" in message
    assert "denied put" in message
    assert S3_SCOPED.secret_key not in message
