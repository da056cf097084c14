"""The store contract, run against the local folder and S3 (a SeaweedFS server on loopback)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.local import LocalStore
from registry.objects import ObjectURI
from registry.s3 import S3Store
from registry.schemes import open_store
from registry.store import Store
from softmax_core.errors import (
    InvalidInputError,
    InvalidNameError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)
from tests.cli_invoke import invoke
from tests.registry.helpers import count_http


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "local":
        s: Store = LocalStore(tmp_path / "store")
    else:
        bucket = request.getfixturevalue("s3_bucket")
        s = S3Store(bucket, "some/prefix", page_size=3)  # tiny pages: listing must paginate
    yield s
    s.close()


def test_put_get_head_round_trip(store: Store) -> None:
    etag = store.put("a/b/c.json", b'{"x": 1}')
    data, etag2 = store.get("a/b/c.json")
    assert data == b'{"x": 1}'
    assert etag == etag2
    info = store.head("a/b/c.json")
    assert info is not None and info.size == 8 and info.etag == etag
    assert abs(info.last_modified - time.time()) < 3600  # a real timestamp, not 0
    assert store.etag("a/b/c.json") == etag
    assert store.put("a/b/c.json", b"other") != etag  # content changes the ETag


def test_missing_keys(store: Store) -> None:
    with pytest.raises(ObjectNotFoundError, match=r"missing\.json"):
        store.get("missing.json")
    assert store.head("missing.json") is None
    assert store.etag("missing.json") is None
    store.delete("missing.json")  # deleting an absent key is fine
    assert list(store.list_keys("nothing/")) == []


def test_only_if_absent(store: Store) -> None:
    store.put("k.json", b"first", if_none_match=True)
    with pytest.raises(PreconditionFailedError):
        store.put("k.json", b"second", if_none_match=True)
    assert store.get("k.json")[0] == b"first"


def _race_only_if_absent(store: Store, key: str, writers: int) -> tuple[list[int], list[int]]:
    """``writers`` threads put ``key`` only-if-absent at once; (winners, losers)."""
    start = threading.Barrier(writers, timeout=60)
    won: list[int] = []
    lost: list[int] = []
    other: list[BaseException] = []

    def write(i: int) -> None:
        start.wait()
        try:
            store.put(key, f"writer {i}".encode(), if_none_match=True)
            won.append(i)
        except PreconditionFailedError:
            lost.append(i)
        except BaseException as e:  # reported below, not lost in the thread
            other.append(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert other == []
    return won, lost


@pytest.mark.slow
def test_only_if_absent_lets_exactly_one_of_16_racing_writers_win(store: Store) -> None:
    """16 threads put one key only-if-absent at the same moment, 5 rounds: each round one
    write succeeds, 15 get PreconditionFailedError, and the object is the winner's."""
    for round_ in range(5):
        won, lost = _race_only_if_absent(store, f"race/{round_}.json", 16)
        assert len(won) == 1 and len(lost) == 15, (won, lost)
        assert store.get(f"race/{round_}.json")[0] == f"writer {won[0]}".encode()


def test_compare_and_swap(store: Store) -> None:
    etag = store.put("k.json", b"v1")
    new = store.put("k.json", b"v2", if_match=etag)
    with pytest.raises(PreconditionFailedError):
        store.put("k.json", b"v3", if_match=etag)  # stale ETag
    assert store.get("k.json") == (b"v2", new)
    with pytest.raises(PreconditionFailedError):
        store.put("absent.json", b"x", if_match=etag)  # if-match on an absent key
    assert store.head("absent.json") is None
    with pytest.raises(InvalidInputError):
        store.put("k.json", b"x", if_none_match=True, if_match=new)


@pytest.mark.slow
def test_concurrent_compare_and_swap_loses_no_update(store: Store) -> None:
    """8 threads x 10 increments through get + if-match put: the counter ends at exactly 80."""
    store.put("counter", b"0")

    def bump() -> None:
        for _ in range(10):
            while True:
                data, etag = store.get("counter")
                try:
                    store.put("counter", str(int(data) + 1).encode(), if_match=etag)
                    break
                except PreconditionFailedError:
                    continue

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("counter")[0] == b"80"


def test_listing_is_sorted_complete_and_paginated(store: Store) -> None:
    keys = [f"m/versions/{n:08d}.json" for n in (3, 1, 10, 2, 7, 5, 4, 9, 8, 6)]
    for k in keys:
        store.put(k, k.encode())
    store.put("m/aliases/champion.json", b"{}")
    store.put("other/x", b"")
    sent = count_http(store.client) if isinstance(store, S3Store) else []
    listed = list(store.list_keys("m/versions/"))
    assert listed == sorted(keys)
    if isinstance(store, S3Store):
        assert len([r for r in sent if "list-type=2" in r]) == 4  # 10 keys, pages of 3
    infos = list(store.list_info("m/"))
    assert [i.key for i in infos] == ["m/aliases/champion.json", *sorted(keys)]
    assert all(i.size == len(i.key) for i in infos if "versions" in i.key)
    assert sorted(store.list_keys("")) == sorted([*keys, "m/aliases/champion.json", "other/x"])
    assert list(store.children("")) == ["m", "other"]
    assert list(store.children("m/")) == ["aliases", "versions"]


def test_delete(store: Store) -> None:
    store.put("x/y.json", b"1")
    store.put("z/w.json", b"2")
    store.delete("x/y.json")
    assert store.head("x/y.json") is None
    assert list(store.list_keys("")) == ["z/w.json"]
    assert "z" in list(store.children(""))
    if isinstance(store, LocalStore):
        # the folder store drops a folder with no object left (LocalStore._holds_object);
        # an S3 server's delimiter listing may not (SeaweedFS lists an emptied "folder"
        # until its cleaner removes it, about 2 minutes later): not relied on anywhere
        assert list(store.children("")) == ["z"]


def test_get_many_keeps_order_and_reports_missing(store: Store) -> None:
    for i in range(5):
        store.put(f"g/{i}.json", str(i).encode())
    got = store.get_many(["g/3.json", "g/missing.json", "g/0.json", "g/4.json"])
    assert [g[0] if g else None for g in got] == [b"3", None, b"0", b"4"]


BAD_KEYS = [
    "",
    "/abs",
    "../escape",
    "a/../../b",
    "a//b",
    "a/./b",
    "a/",
    ".",
    "a/..",
    "a b",
    "a\\b",
    "é",
]
BAD_PREFIXES = ["../", "/", "a", "a//", "../../etc/"]


def test_keys_that_could_escape_are_refused_before_any_io(store: Store) -> None:
    sent = count_http(store.client) if isinstance(store, S3Store) else []
    for key in BAD_KEYS:
        for call in (
            lambda key=key: store.get(key),
            lambda key=key: store.head(key),
            lambda key=key: store.put(key, b"x"),
            lambda key=key: store.put(key, b"x", if_none_match=True),
            lambda key=key: store.delete(key),
        ):
            with pytest.raises(InvalidNameError):
                call()
    for prefix in BAD_PREFIXES:
        with pytest.raises(InvalidNameError):
            list(store.list_keys(prefix))
    assert sent == []
    if isinstance(store, LocalStore):
        assert not store.root.exists() or list(store.root.rglob("*")) == []


def test_local_store_never_shows_half_written_files(tmp_path: Path) -> None:
    """Writes go through a temp file + rename: a crash leaves only a temp file, never listed."""
    store = LocalStore(tmp_path / "s")
    store.put("a/k.json", b"ok")
    debris = tmp_path / "s" / "a" / ".~tmp-k2.json.dead"
    debris.write_bytes(b"half")
    assert list(store.list_keys("")) == ["a/k.json"]
    old = time.time() - 7200
    os.utime(debris, (old, old))
    assert store.sweep(time.time() - 3600) == ["a/.~tmp-k2.json.dead"]
    assert not debris.exists()


def test_local_delete_removes_the_folders_it_empties(tmp_path: Path) -> None:
    """As on S3, a folder lives only while it holds a key: deleting the last key of
    ``a/b/`` removes ``a/b`` and ``a`` (never the root); a folder that holds anything,
    a writer's temporary file included, stays; and a write into a removed folder works."""
    root = tmp_path / "s"
    store = LocalStore(root)
    store.put("a/b/k.json", b"1")
    store.put("a/b/l.json", b"2")
    store.put("c/k.json", b"3")
    store.delete("a/b/k.json")
    assert (root / "a" / "b").is_dir()  # l.json is still there
    store.delete("a/b/l.json")
    assert not (root / "a").exists()
    assert (root / "c" / "k.json").is_file()
    (root / "c" / ".~tmp-x.json.1").write_bytes(b"half")  # a writer at work
    store.delete("c/k.json")
    assert (root / "c").is_dir()
    store.delete("c/k.json")  # absent: still no error
    store.put("a/b/k.json", b"again")
    assert store.get("a/b/k.json")[0] == b"again" and root.is_dir()
    store.delete("a/b/k.json")
    assert [p.name for p in root.iterdir()] == ["c"]


def test_local_write_makes_its_folder_again_when_a_delete_removed_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between a writer's mkdir and its temporary file, another process's delete may
    remove the (still empty) folder: the write makes it again instead of failing."""
    from registry import local
    from softmax_core.atomicio import write_temp

    calls = []

    def raced(path: Path, data: bytes) -> Path:
        calls.append(path)
        if len(calls) == 1:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.rmdir()  # the other process's delete, just then
            raise FileNotFoundError(2, "No such file or directory")
        return write_temp(path, data)

    monkeypatch.setattr(local, "write_temp", raced)
    store = LocalStore(tmp_path / "s")
    store.put("n/k.json", b"1", if_none_match=True)
    assert store.get("n/k.json")[0] == b"1" and len(calls) == 2


def test_local_only_if_absent_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On filesystems without link(2) the lock-protected fallback keeps only-if-absent exact."""
    import errno

    def no_links(*_: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    store = LocalStore(tmp_path / "s")
    store.put("k.json", b"first", if_none_match=True)
    with pytest.raises(PreconditionFailedError):
        store.put("k.json", b"second", if_none_match=True)
    assert store.get("k.json")[0] == b"first"
    assert [p.name for p in (tmp_path / "s").iterdir() if p.name != ".~lock"] == ["k.json"]


@pytest.mark.parametrize(
    ("uri", "kind", "root"),
    [
        ("/tmp/reg", LocalStore, "/tmp/reg"),
        ("file:///tmp/reg%20x", LocalStore, "/tmp/reg x"),
        ("file://localhost/tmp/reg", LocalStore, "/tmp/reg"),
    ],
)
def test_open_store_local_uris(uri: str, kind: type, root: str) -> None:
    s = open_store(uri)
    assert isinstance(s, kind) and s.uri == root


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "s3://",
        "s3://Bad_Bucket/x",
        "s3://ab/x",
        "s3://bucket/../x",
        "s3://bucket/a//b",
        "s3://key:secret@bucket/x",
        "s3://key:secret/x@bucket/x",  # urlsplit: bucket "key:secret"
        "s3:///key:secret@bucket/x",
        "s3://bucket/x?sig=secret",
        "gs://bucket/x",
        "file://otherhost/x",
        "file://key:secret@otherhost/x",
        "file://key:secret/x@otherhost/x",
    ],
)
def test_open_store_refuses_bad_uris(uri: str) -> None:
    with pytest.raises(InvalidNameError) as e:
        open_store(uri)
    assert "secret" not in str(e.value)


@pytest.mark.parametrize(
    "uri", ["s3://key:secret/x@bucket/x", "file://key:secret@otherhost/x", "s3://key:secret@b/x"]
)
def test_the_cli_refuses_a_registry_uri_with_a_password_without_showing_it(
    uri: str, tmp_path: Path
) -> None:
    code, out, err = invoke("registry", "list", "--registry", uri, "--cache-dir", tmp_path)
    assert (code, out) == (2, "") and err.startswith("error: registry URI '")
    assert "secret" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "uri",
    [
        "s3://key:secret@bucket/k",
        "s3://key:secret/x@bucket/k",
        "s3://key:secret#x@bucket/k",
        "https://key:secret/x@host/k",
        "s3://bucket/k?sig=secret",
    ],
)
def test_object_addresses_with_a_password_are_refused_without_it(uri: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        ObjectURI.parse(uri, "input")
    assert "secret" not in str(e.value) and str(e.value).startswith("input '")


def test_s3_uri_and_prefix(s3_bucket: str) -> None:
    s = open_store(f"s3://{s3_bucket}/team/models/")
    assert isinstance(s, S3Store)
    assert s.uri == f"s3://{s3_bucket}/team/models" and s.prefix == "team/models/"
    s.put("k.json", b"1")
    import boto3

    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == ["team/models/k.json"]


def test_local_keys_never_pass_through_a_symlink(tmp_path: Path) -> None:
    """A trainer who may create ``models/<name>/`` could make ``aliases`` a link to a
    folder it owns: a promote would then write the alias record there, and `show` read it
    back. Every key through a link below the root is refused, read and write, one line,
    exit 4; a key that is itself a link is not followed, nor listed past (gc); the root
    itself may be a link (users keep registries that way)."""
    from tests.registry.helpers import make_model

    model = tmp_path / "m.npz"
    make_model(1).save(model)
    reg = tmp_path / "reg"
    assert invoke("registry", "publish", model, "--name", "lr", "--registry", reg)[0] == 0
    evil = tmp_path / "evil"
    evil.mkdir()
    (reg / "models" / "lr" / "aliases").symlink_to(evil)
    for args in (("promote", "lr:1", "champion"), ("show", "lr@champion")):
        code, out, err = invoke("registry", *args, "--registry", reg)
        assert code == 4, (code, out, err)
        assert "models/lr/aliases is a symbolic link" in err and len(err.splitlines()) == 1
    assert list(evil.iterdir()) == []

    store = LocalStore(reg)
    (evil / "k.json").write_bytes(b"outside")
    (reg / "models" / "lr" / "versions" / "k.json").symlink_to(evil / "k.json")
    with pytest.raises(StorageError, match="is a symbolic link"):
        store.get("models/lr/versions/k.json")
    with pytest.raises(StorageError, match="is a symbolic link"):
        store.put("models/lr/aliases/x.json", b"1")
    with pytest.raises(StorageError, match="is a symbolic link"):
        store.delete("models/lr/aliases/k.json")
    with pytest.raises(StorageError, match="is a symbolic link"):
        list(store.list_keys("models/lr/aliases/"))
    # a listing refuses a link too: skipped, its objects looked gone, and gc deleted the
    # blob of a version whose versions/ folder was a link
    for listing in (store.list_keys, store.list_info, store.children):
        with pytest.raises(StorageError, match="is a symbolic link"):
            list(listing("models/lr/"))
    assert [p.name for p in evil.iterdir()] == ["k.json"]
    (reg / "models" / "lr" / "versions" / "k.json").unlink()
    (reg / "models" / "lr" / "aliases").unlink()
    versions = reg / "models" / "lr" / "versions"
    versions.rename(tmp_path / "versions")
    versions.symlink_to(tmp_path / "versions")
    blobs = sorted(p for p in (reg / "blobs").rglob("*") if p.is_file())
    code, _, err = invoke("registry", "gc", "--registry", reg, "--grace", "0", "--force")
    assert code == 4 and "models/lr/versions is a symbolic link" in err, err
    assert sorted(p for p in (reg / "blobs").rglob("*") if p.is_file()) == blobs  # kept
    versions.unlink()
    (tmp_path / "versions").rename(versions)

    (tmp_path / "linked").symlink_to(reg)  # the root may be a link
    assert invoke("registry", "show", "lr:1", "--registry", tmp_path / "linked")[0] == 0
    assert LocalStore(tmp_path / "linked").get("models/lr/versions/00000001.json")[0]
