"""The registry contract, run against both stores (local folder; S3 on SeaweedFS, loopback)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from registry import LocalStore, Manifest, ObjectInfo, Registry, S3Store, events, layout, open_store
from registry.events import RegistryEvent
from softmax_core import settings
from softmax_core.errors import (
    CorruptObjectError,
    DataNotFoundError,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    ModelNotFoundError,
    StorageError,
)
from softmax_core.model import Model
from tests.registry.conftest import expect_line, start_worker
from tests.registry.helpers import CountingStore, ReadOnlyStore, count_http, make_model


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- publish, resolve, pull ---------------------------------------------------------------


def test_publish_then_pull_and_load(reg: Registry, tmp_path: Path) -> None:
    model = make_model(1, accuracy=0.91)
    path = model.save(tmp_path / "m.npz")
    m = reg.publish(path, "digits", lineage={"flow_run_id": "run-42"})
    assert (m.name, m.version) == ("digits", 1)
    assert m.digest == sha(path.read_bytes())  # the exact file bytes are the blob
    assert m.size == path.stat().st_size
    assert m.metrics == {"accuracy": 0.91}
    assert m.params["seed"] == 1
    assert m.preprocessing == {"steps": ["scale"]}
    assert m.input_schema["shape"] == [28, 28]
    assert m.data_digest == "d" * 64 and m.code_version == "test"
    assert m.lineage == {"data_source": "test", "flow_run_id": "run-42"}

    got, cached = reg.pull("digits:1")
    assert got == m
    assert cached == tmp_path / "cache" / "blobs" / "sha256" / f"{m.digest}.npz"
    assert cached.read_bytes() == path.read_bytes()
    m2, loaded = reg.load("digits")
    assert m2 == m
    assert np.array_equal(loaded.W, model.W) and np.array_equal(loaded.b, model.b)


def test_versions_refs_and_newest(reg: Registry) -> None:
    published = [reg.publish(make_model(seed), "digits") for seed in (1, 2, 3)]
    assert [m.version for m in published] == [1, 2, 3]
    assert [m.digest for m in reg.versions("digits")] == [m.digest for m in published]
    assert reg.resolve("digits") == published[2]  # bare name: the newest
    assert reg.resolve("digits:2") == published[1]
    reg.publish(make_model(9), "other")
    assert reg.models() == ["digits", "other"]
    assert reg.aliases("digits") == {}


def test_publish_accepts_a_model_object_and_refuses_bad_input(
    reg: Registry, tmp_path: Path
) -> None:
    m = reg.publish(make_model(5), "digits", alias="champion")
    assert reg.aliases("digits") == {"champion": m.version}
    with pytest.raises(DataNotFoundError):
        reg.publish(tmp_path / "absent.npz", "digits")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InvalidInputError, match=r"junk\.npz"):
        reg.publish(tmp_path / "junk.npz", "digits")
    with pytest.raises(InvalidInputError, match="lineage"):
        reg.publish(make_model(5), "digits", lineage={"x": object()})
    assert [v.version for v in reg.versions("digits")] == [1]


def test_unknown_model_version_alias(reg: Registry) -> None:
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        reg.resolve("nope")
    with pytest.raises(ModelNotFoundError):
        reg.versions("nope")
    reg.publish(make_model(1), "digits")
    with pytest.raises(ModelNotFoundError, match=r"no version 7.*version 1"):
        reg.resolve("digits:7")
    with pytest.raises(ModelNotFoundError, match="no alias 'champion'"):
        reg.resolve("digits@champion")
    with pytest.raises(ModelNotFoundError):
        reg.promote("digits", 2, "champion")
    with pytest.raises(ModelNotFoundError):
        reg.rollback("digits", "champion")


# --- aliases ------------------------------------------------------------------------------


def test_promote_rollback_and_history(reg: Registry) -> None:
    for seed in (1, 2, 3):
        reg.publish(make_model(seed), "digits")
    first = reg.promote("digits", 1, "champion")
    assert first.moved and first.record.version == 1
    assert reg.promote("digits", 3, "champion").record.previous == (1,)
    same = reg.promote("digits", 3, "champion")  # already there: no move recorded
    assert not same.moved and (same.record.seq, same.record.version) == (2, 3)
    reg.promote("digits", 2, "champion")
    assert reg.resolve("digits@champion").version == 2
    back = reg.rollback("digits", "champion")
    assert (back.version, back.from_version, back.action) == (3, 2, "rollback")
    assert reg.rollback("digits", "champion").version == 1
    with pytest.raises(ModelNotFoundError, match="no earlier version"):
        reg.rollback("digits", "champion")
    history = reg.history("digits", "champion")
    assert [(h.seq, h.action, h.version) for h in history] == [
        (1, "promote", 1),
        (2, "promote", 3),
        (3, "promote", 2),
        (4, "rollback", 3),
        (5, "rollback", 1),
    ]
    reg.promote("digits", 2, "staging")
    assert reg.aliases("digits") == {"champion": 1, "staging": 2}


def test_a_move_that_writes_nothing_needs_no_write_access(
    registry_uri: str, tmp_path: Path
) -> None:
    """A promote to where the alias is, and a rollback with nowhere to go, write nothing:
    on a registry that refuses writes they answer as on any other (issue 27, item 11).
    The current move's history entry is missing (a cut-short move): it is not healed
    then, since nothing moves past it."""
    setup = Registry.open(registry_uri, cache_dir=tmp_path / "setup")
    for seed in (1, 2):
        setup.publish(make_model(seed), "digits")
    setup.promote("digits", 1, "champion")
    setup.promote("digits", 2, "champion")
    setup.promote("digits", 1, "staging")
    setup.store.delete(layout.alias_log_key("digits", "champion", 2))

    store = ReadOnlyStore(open_store(registry_uri))
    reg = Registry(store, cache_dir=tmp_path / "cache")
    same = reg.promote("digits", 2, "champion")
    assert not same.moved and (same.record.version, same.record.seq) == (2, 2)
    with pytest.raises(ModelNotFoundError, match="no earlier version"):
        reg.rollback("digits", "staging")
    assert store.attempts == []
    assert [(h.seq, h.action, h.version) for h in reg.history("digits", "champion")] == [
        (1, "promote", 1),
        (2, "promote", 2),
    ]

    with pytest.raises(StorageError, match="read-only"):  # a real move does need to write
        reg.promote("digits", 1, "champion")
    assert store.attempts, "the wrapper refused nothing: the test tested nothing"
    setup.promote("digits", 1, "champion")  # with write access, the lost entry is healed
    assert len(list(setup.store.list_keys(layout.alias_log_prefix("digits", "champion")))) == 3


def test_every_publish_and_alias_move_is_an_event(
    registry_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[RegistryEvent] = []

    def broken(event: RegistryEvent) -> None:
        raise ConnectionError("the event API is down")

    reg = Registry.open(registry_uri, cache_dir=tmp_path / "c", listeners=(broken, seen.append))
    with reg:
        m1 = reg.publish(make_model(1), "digits", alias="champion")
        reg.publish(make_model(2), "digits")
        reg.promote("digits", 2, "champion")
        reg.promote("digits", 2, "champion")  # already there: no move, no event
        reg.rollback("digits", "champion")
    assert [(e.event, e.payload.get("from"), e.payload.get("to")) for e in seen] == [
        (events.MODEL_PUBLISHED, None, None),
        (events.ALIAS_MOVED, None, 1),
        (events.MODEL_PUBLISHED, None, None),
        (events.ALIAS_MOVED, 1, 2),
        (events.ALIAS_MOVED, 2, 1),
    ]
    first = seen[0]
    assert first.resource["prefect.resource.id"] == f"softmax-pipe.registry.{reg.uri}.model.digits"
    assert first.payload["version"] == 1 and first.payload["digest"] == m1.digest
    moved = seen[-1]
    assert moved.resource["prefect.resource.id"].endswith(".model.digits.alias.champion")
    assert moved.resource["softmax-pipe.alias"] == "champion"
    assert moved.payload["action"] == "rollback" and moved.payload["registry"] == reg.uri
    assert caplog.text.count("could not send registry event") == 5  # logged, never raised


def test_a_report_lives_beside_its_version_and_opens_from_its_url(reg: Registry) -> None:
    import urllib.request

    reg.publish(make_model(1), "digits")
    assert reg.report_url("digits", 1) is None  # published without one
    with pytest.raises(ModelNotFoundError):
        reg.put_report("digits", 2, "<p>no such version</p>")
    key = reg.put_report("digits", 1, "<!doctype html><p>digits:1 é</p>", confusion_png=b"\x89PNG")
    assert key == "models/digits/versions/00000001.html"
    assert reg.version_numbers("digits") == [1]  # listings skip the report files
    assert [m.version for m in reg.versions("digits")] == [1]
    url = reg.report_url("digits", 1, expires=600)
    assert url is not None
    with urllib.request.urlopen(url, timeout=30) as resp:  # file:// or presigned S3 on loopback
        assert resp.read().decode("utf-8") == "<!doctype html><p>digits:1 é</p>"
        if url.startswith("http"):
            assert "X-Amz-Expires=600" in url and "X-Amz-Signature=" in url
            assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    png = reg.report_url("digits", 1, suffix=".confusion.png")
    assert png is not None
    with urllib.request.urlopen(png, timeout=30) as resp:
        assert resp.read() == b"\x89PNG"
    with pytest.raises(InvalidNameError, match="report suffix"):
        reg.report_url("digits", 1, suffix="/../x")
    default = reg.report_url("digits", 1)  # what artifacts, logs and `registry show` carry
    assert default is not None
    if default.startswith("http"):  # issue 27, item 3: a link anyone holding it can open
        assert f"X-Amz-Expires={settings.REPORT_URL_SECONDS}&" in default
        assert settings.REPORT_URL_SECONDS <= 24 * 3600, "report links live hours, not days"


def test_a_damaged_alias_is_repaired_by_promote_repair(reg: Registry) -> None:
    """One damaged alias record: named with the way out; `promote --repair` replaces it,
    its history goes on after the last logged move, and the others are untouched."""
    for seed in (1, 2):
        reg.publish(make_model(seed), "digits")
    reg.promote("digits", 1, "champion")
    reg.promote("digits", 2, "champion")
    reg.promote("digits", 2, "staging")
    reg.store.put(layout.alias_key("digits", "champion"), b'{"version": -1')
    for call in (
        lambda: reg.resolve("digits@champion"),
        lambda: reg.promote("digits", 1, "champion"),
        lambda: reg.rollback("digits", "champion"),
    ):
        with pytest.raises(CorruptObjectError, match="champion"):
            call()
    with pytest.raises(CorruptObjectError, match="--repair"):
        reg.promote("digits", 1, "champion")
    fixed = reg.promote("digits", 1, "champion", repair=True).record
    assert (fixed.version, fixed.seq, fixed.previous) == (1, 3, ())
    assert reg.resolve("digits@champion").version == 1
    assert [h.seq for h in reg.history("digits", "champion")] == [1, 2, 3]
    assert reg.aliases("digits") == {"champion": 1, "staging": 2}
    # on a sound record, --repair is an ordinary promote
    assert reg.promote("digits", 2, "champion", repair=True).record.previous == (1,)


def test_alias_resolution_takes_at_most_3_requests(
    counted: tuple[Registry, CountingStore],
) -> None:
    reg, store = counted
    reg.publish(make_model(1), "digits", alias="champion")
    http = count_http(store.inner.client) if isinstance(store.inner, S3Store) else None
    store.reset()
    assert reg.resolve("digits@champion").version == 1
    assert store.total <= 3, store.calls
    if http is not None:
        assert len(http) <= 3, http  # what actually went over the wire
    store.reset()
    reg.resolve("digits:1")
    assert store.total == 1


def test_a_cache_hit_downloads_nothing(counted: tuple[Registry, CountingStore]) -> None:
    reg, store = counted
    m = reg.publish(make_model(1), "digits")
    store.reset()
    first = reg.fetch("digits:1")
    assert not first.cached and m.blob_key in store.keys_read
    store.reset()
    second = reg.fetch("digits:1")
    assert second.cached and second.path == first.path
    assert m.blob_key not in store.keys_read
    assert store.calls == {"get": 1}  # the manifest only


# --- integrity ----------------------------------------------------------------------------


def test_tampered_blob_is_refused(reg: Registry, tmp_path: Path) -> None:
    m = reg.publish(make_model(1), "digits")
    evil = make_model(666).to_bytes()  # a perfectly loadable model, just not the published one
    reg.store.put(m.blob_key, evil)
    with pytest.raises(IntegrityError, match=f"expected {m.digest}"):
        reg.pull("digits:1")
    with pytest.raises(IntegrityError):
        reg.load("digits:1")
    assert not reg.blob_cache_path(m.digest).exists()  # nothing bad was cached


def test_tampered_cache_is_fetched_again(reg: Registry) -> None:
    m = reg.publish(make_model(1), "digits")
    _, path = reg.pull("digits:1")
    path.write_bytes(make_model(2).to_bytes())
    result = reg.fetch("digits:1")
    assert not result.cached
    assert sha(result.path.read_bytes()) == m.digest


def test_missing_blob_is_an_integrity_error(reg: Registry) -> None:
    m = reg.publish(make_model(1), "digits")
    reg.store.delete(m.blob_key)
    with pytest.raises(IntegrityError, match="missing"):
        reg.pull("digits:1")


def test_corrupt_manifest_is_reported_and_blocks_gc(reg: Registry) -> None:
    m = reg.publish(make_model(1), "digits")
    reg.store.put(layout.manifest_key("digits", 1), b"{not json")
    with pytest.raises(CorruptObjectError, match="not valid JSON"):
        reg.resolve("digits:1")
    with pytest.raises(CorruptObjectError):
        reg.gc(grace_seconds=0)  # cannot tell what it references: delete nothing
    assert reg.store.head(m.blob_key) is not None


# --- names --------------------------------------------------------------------------------

BAD_NAMES = [
    "",
    ".",
    "..",
    "-rf",
    "--name",
    "a/b",
    "../x",
    "a..b",
    "has space",
    "x" * 129,
    "é",
    "a\\b",
    "a@b:1",
]


def test_bad_names_are_refused_before_any_request(
    counted: tuple[Registry, CountingStore], tmp_path: Path
) -> None:
    reg, store = counted
    http = count_http(store.inner.client) if isinstance(store.inner, S3Store) else []
    path = make_model(1).save(tmp_path / "m.npz")
    for bad in BAD_NAMES:
        for call in (
            lambda bad=bad: reg.publish(path, bad),
            lambda bad=bad: reg.publish(path, "ok", alias=bad),
            lambda bad=bad: reg.resolve(bad),
            lambda bad=bad: reg.resolve(f"ok@{bad}"),
            lambda bad=bad: reg.pull(f"{bad}:1"),
            lambda bad=bad: reg.promote(bad, 1, "champion"),
            lambda bad=bad: reg.promote("ok", 1, bad),
            lambda bad=bad: reg.rollback("ok", bad),
            lambda bad=bad: reg.versions(bad),
            lambda bad=bad: reg.aliases(bad),
        ):
            with pytest.raises(InvalidNameError):
                call()
    for ref in ("ok:0", "ok:-1", "ok:x", "ok:", "ok@", "@a", ":1"):
        with pytest.raises(InvalidNameError):
            reg.resolve(ref)
    assert store.total == 0 and http == []


# --- concurrency and crashes (real processes) ---------------------------------------------


@pytest.mark.slow
def test_16_concurrent_publishers_get_16_distinct_versions(
    registry_uri: str, reg: Registry, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    workers = [
        start_worker(
            "publish", registry_uri, str(tmp_path / f"c{i}"), "digits", str(100 + i), str(go)
        )
        for i in range(16)
    ]
    for w in workers:
        expect_line(w, "ready")
    go.touch()  # all at once
    results = []
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        results.append(json.loads(out))

    versions = sorted(r["version"] for r in results)
    assert versions == list(range(1, 17))  # distinct, none lost, no gaps
    expected = {r["version"]: r["digest"] for r in results}
    assert len(set(expected.values())) == 16
    manifests = reg.versions("digits")
    assert {m.version: m.digest for m in manifests} == expected
    for m in manifests:
        seed = m.lineage["worker_seed"]
        assert m.digest == sha(make_model(seed).to_bytes())
        _, loaded = reg.load(m.ref)  # readable, verified
        assert np.array_equal(loaded.W, make_model(seed).W)


def test_concurrent_promotes_are_all_recorded(
    registry_uri: str, reg: Registry, tmp_path: Path
) -> None:
    for seed in range(1, 10):
        reg.publish(make_model(seed), "digits")
    reg.promote("digits", 1, "champion")
    go = tmp_path / "go"
    workers = [
        start_worker(
            "promote", registry_uri, str(tmp_path / "c"), "digits", str(v), "champion", str(go)
        )
        for v in range(2, 10)
    ]
    for w in workers:
        expect_line(w, "ready")
    go.touch()
    moves = []
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        moves.append(json.loads(out))

    history = reg.history("digits", "champion")
    assert [h.seq for h in history] == list(range(1, 10))  # one entry per move, no holes
    assert sorted(h.version for h in history[1:]) == list(range(2, 10))  # every promote landed
    assert {h.move_id for h in history[1:]} == {m["move_id"] for m in moves}
    for before, after in itertools.pairwise(history):
        assert after.from_version == before.version  # each move saw the one before it
        assert after.previous == (*before.previous, before.version)
    final = reg.alias_record("digits", "champion")
    assert final == history[-1]
    assert final.version in range(2, 10)
    assert final.previous == tuple(h.version for h in history[:-1])  # no torn state


def test_crash_between_blob_and_manifest(registry_uri: str, reg: Registry, tmp_path: Path) -> None:
    first = reg.publish(make_model(1), "digits")
    crasher = start_worker("crash", registry_uri, str(tmp_path / "c"), "digits", "2")
    expect_line(crasher, "paused")  # blob uploaded, manifest not yet written
    crasher.send_signal(signal.SIGKILL)
    crasher.communicate(timeout=60)
    assert crasher.returncode == -signal.SIGKILL

    orphan = layout.blob_key(sha(make_model(2).to_bytes()))
    assert reg.store.head(orphan) is not None  # the upload happened...
    assert [m.version for m in reg.versions("digits")] == [1]  # ...but no version is visible
    nxt = reg.publish(make_model(3), "digits")
    assert nxt.version == 2  # a clean number

    assert reg.gc() == []  # default grace period: the orphan is too young to judge
    assert reg.gc(grace_seconds=0, dry_run=True) == [orphan]
    assert reg.store.head(orphan) is not None  # dry run deletes nothing
    assert reg.gc(grace_seconds=0) == [orphan]
    assert reg.store.head(orphan) is None
    for m in (first, nxt):  # referenced blobs survive, still verifiable
        assert reg.store.head(m.blob_key) is not None
        reg.load(m.ref)


def test_gc_never_deletes_a_referenced_blob(reg: Registry) -> None:
    a = reg.publish(make_model(1), "digits")
    b = reg.publish(make_model(1), "digits")  # same bytes, same blob, two versions
    c = reg.publish(make_model(2), "other")
    assert a.digest == b.digest
    assert reg.gc(grace_seconds=0) == []
    for m in (a, b, c):
        assert reg.store.head(m.blob_key) is not None


# --- interop: the layout is plain objects anyone can read ---------------------------------


def test_layout_is_readable_without_softmax_pipe(registry_uri: str, reg: Registry) -> None:
    m = reg.publish(make_model(1), "digits", alias="champion")
    if registry_uri.startswith("s3://"):
        import boto3

        bucket, _, prefix = registry_uri[len("s3://") :].partition("/")
        s3 = boto3.client("s3")  # plain boto3, configured only by the environment
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
        keys = {o["Key"][len(prefix) + 1 :] for o in listed["Contents"]}

        def read(key: str) -> bytes:
            return s3.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read()
    else:
        root = Path(registry_uri)
        keys = {
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and p.name != ".~lock"
        }

        def read(key: str) -> bytes:
            return (root / key).read_bytes()

    assert keys == {
        f"blobs/sha256/{m.digest}.npz",
        "models/digits/versions/00000001.json",
        "models/digits/aliases/champion.json",
        "models/digits/aliases/champion.log/000000000001.json",
    }
    blob = read(f"blobs/sha256/{m.digest}.npz")
    assert sha(blob) == m.digest
    with np.load(__import__("io").BytesIO(blob), allow_pickle=False) as z:
        assert z["W"].shape == (784, 10) and json.loads(str(z["meta"][()]))["params"]["seed"] == 1
    manifest = json.loads(read("models/digits/versions/00000001.json"))
    assert manifest["schema"] == "softmax-pipe/manifest@1"
    assert manifest["digest"] == m.digest and manifest["version"] == 1
    assert manifest["blob"] == f"blobs/sha256/{m.digest}.npz"
    assert manifest["metrics"] == {"accuracy": 0.9}
    assert Manifest.from_dict(manifest) == m
    alias = json.loads(read("models/digits/aliases/champion.json"))
    assert (alias["version"], alias["previous"], alias["seq"]) == (1, [], 1)
    assert json.loads(read("models/digits/aliases/champion.log/000000000001.json")) == alias
    assert Model.from_bytes(blob).info.metrics == {"accuracy": 0.9}


# --- listing many versions: write-once index pages ----------------------------------------


def test_listing_many_versions_uses_index_pages(counted: tuple[Registry, CountingStore]) -> None:
    reg, store = counted
    base = reg.publish(make_model(1), "big")
    with ThreadPoolExecutor(max_workers=8) as pool:  # 249 more versions, written as publish would
        list(
            pool.map(
                lambda n: store.inner.put(
                    layout.manifest_key("big", n),
                    dataclasses.replace(base, version=n).to_bytes(),
                    if_none_match=True,
                ),
                range(2, 251),
            )
        )
    store.reset()
    first = reg.versions("big")
    assert [m.version for m in first] == list(range(1, 251))
    assert store.calls["get"] == 250
    assert store.calls["put"] == 2  # pages 1-100 and 101-200; 201-300 is still open
    store.reset()
    again = reg.versions("big")
    assert again == first
    assert store.calls["get"] == 2 + 50  # two pages + the versions of the open range
    assert store.calls["put"] == 0

    # A manifest changed behind the index's back: its ETag differs, so it is read itself.
    changed = dataclasses.replace(first[9], metrics={"accuracy": 0.1})
    store.inner.put(layout.manifest_key("big", 10), changed.to_bytes())
    assert reg.versions("big")[9].metrics == {"accuracy": 0.1}
    # A damaged page is ignored (it is only a cache): the manifests are read, the page rewritten.
    store.inner.put(layout.index_key("big", 0), b"\x00garbage")
    assert [m.version for m in reg.versions("big")] == list(range(1, 251))
    store.reset()
    assert reg.versions("big") == [*first[:9], changed, *first[10:]]
    assert store.calls["get"] == 2 + 50
    assert reg.gc(grace_seconds=0) == []  # gc sees every version's blob as referenced


def test_the_publish_that_completes_a_range_writes_its_index_page(reg: Registry) -> None:
    base = reg.publish(make_model(1), "big")
    for n in range(2, 100):
        key = layout.manifest_key("big", n)
        reg.store.put(key, dataclasses.replace(base, version=n).to_bytes(), if_none_match=True)
    assert reg.store.head(layout.index_key("big", 0)) is None
    assert reg.publish(make_model(2), "big").version == 100
    page = reg.store.get(layout.index_key("big", 0))[0]
    assert len(json.loads(page)["entries"]) == 100


def test_gc_reads_the_manifests_not_a_tampered_index_page(reg: Registry) -> None:
    """A parseable page naming another digest for v5 must not make gc delete v5's blob."""
    real = reg.publish(make_model(1), "big")
    for n in range(2, 100):
        key = layout.manifest_key("big", n)
        reg.store.put(key, dataclasses.replace(real, version=n).to_bytes(), if_none_match=True)
    reg.publish(make_model(2), "big")  # version 100 closes page 0
    key = layout.index_key("big", 0)
    page = json.loads(reg.store.get(key)[0])
    for entry in page["entries"]:
        entry["manifest"]["digest"] = "0" * 64  # lies about every version's blob
    reg.store.put(key, json.dumps(page).encode())
    listed = {m.version: m.digest for m in reg.versions("big")}  # checked against manifests
    assert listed[5] == real.digest and set(listed.values()) == {real.digest, listed[100]}
    reg.gc(grace_seconds=0)
    assert reg.store.head(real.blob_key) is not None
    _, model = reg.load("big:5")
    assert model.W.shape == (784, 10)


# --- gc racing a publisher ----------------------------------------------------------------


class GcStrikesAfterTheManifest(CountingStore):
    """Deletes the blob right after the manifest is written: a gc that had listed it as
    an old orphan before the publisher re-uploaded the same bytes."""

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        etag = super().put(key, data, if_none_match=if_none_match, if_match=if_match)
        if "/versions/" in key:
            self.inner.delete(json.loads(data)["blob"])
        return etag


def test_publish_restores_a_blob_deleted_by_a_concurrent_gc(
    registry_uri: str, tmp_path: Path
) -> None:
    reg = Registry(GcStrikesAfterTheManifest(open_store(registry_uri)), cache_dir=tmp_path / "c")
    m = reg.publish(make_model(1), "digits")
    assert reg.store.head(m.blob_key) is not None
    reg.load("digits:1")


class FailsOnceAfterTheManifest(CountingStore):
    """The first look at a blob after a manifest is written fails, as a connection reset
    would: the version exists, its publish did not finish."""

    failed = False

    def head(self, key: str) -> ObjectInfo | None:
        if key.startswith("blobs/") and not self.failed:
            self.failed = True
            raise StorageError(f"injected fault: connection reset reading {key}")
        return super().head(key)


def test_a_publish_retried_with_its_claimed_version_finishes_that_version(
    registry_uri: str, tmp_path: Path
) -> None:
    seen: list[RegistryEvent] = []
    store = FailsOnceAfterTheManifest(open_store(registry_uri))
    reg = Registry(store, cache_dir=tmp_path / "c", listeners=(seen.append,))
    heard: list[Manifest] = []
    with pytest.raises(StorageError, match="injected fault"):
        reg.publish(make_model(1), "digits", committed=heard.append)
    assert [m.ref for m in heard] == ["digits:1"] and seen == []  # written, not told

    again = reg.publish(make_model(1), "digits", committed=heard.append, claimed=heard[0])
    assert again == heard[0] and len(heard) == 1  # finished, not claimed again
    assert reg.version_numbers("digits") == [1]
    assert [(e.event, e.payload["version"]) for e in seen] == [(events.MODEL_PUBLISHED, 1)]
    reg.load("digits:1")

    with pytest.raises(InvalidInputError, match="no earlier attempt of this publish"):
        reg.publish(make_model(2), "digits", claimed=heard[0])
    # the same bytes published again without a claim are a new version, as ever
    assert reg.publish(make_model(1), "digits").ref == "digits:2"
    assert reg.version_numbers("digits") == [1, 2]


def test_gc_keeps_an_orphan_that_a_publisher_refreshes_meanwhile(tmp_path: Path) -> None:
    """The age is checked again right before deleting: a re-uploaded blob is young again."""

    class RefreshOnHead(CountingStore):
        def head(self, key: str) -> ObjectInfo | None:
            if key.startswith("blobs/"):
                data, _ = self.inner.get(key)
                self.inner.put(key, data)  # a publisher uploads the same model again
            return super().head(key)

    local = LocalStore(tmp_path / "reg")
    orphan = make_model(7).to_bytes()
    key = layout.blob_key(sha(orphan))
    local.put(key, orphan)
    old = time.time() - 7200
    os.utime(local.root / key, (old, old))
    assert Registry(local, cache_dir=tmp_path / "c").gc(dry_run=True) == [key]  # an old orphan
    reg = Registry(RefreshOnHead(local), cache_dir=tmp_path / "c")
    assert reg.gc() == []
    assert local.head(key) is not None
