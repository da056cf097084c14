"""``registry check``: prove a store's conditional writes before the registry trusts it.

The protocol (``registry.claim``, ``registry.aliases``, ``registry.datasets``) is only as
safe as the store's only-if-absent and compare-and-swap writes. Servers that call
themselves S3-compatible differ exactly there: some ignore ``If-None-Match`` on a PUT,
some let several racing conditional PUTs succeed. On such a store two publishers get the
same version number and one model is lost, silently. So a store is proven, in a scratch
prefix of its own (``checks/<run id>/``, removed afterwards), by three probes:

only-if-absent
    ``trials`` times, ``racers`` threads write one key only-if-absent at once: exactly
    one may win, and the key must then hold the winner's bytes; a write to a key that
    exists must be refused.
compare-and-swap
    ``racers`` threads each append ``rounds`` entries to one record by read, then write
    only-if-the-ETag-matches (retrying on a refusal): no entry may be lost; a write with
    a stale ETag, and one to a key that does not exist, must be refused.
lost answer
    a conditional write lands and is sent again, as a client retries when the answer
    was lost: the retry must be refused, and the stored bytes must be the first
    attempt's, so that the writer recognises the object as its own
    (:func:`registry.writes.is_ours`, what ``claim_next`` and alias moves rely on).

Before them one write goes alone: a store that takes no writes at all (no rights on the
scratch prefix, an endpoint gone) raises its own error after that one request, not after
every racer's.

:func:`check_store` runs them and returns a :class:`CheckResult`. :class:`CheckedStore`
wraps a store so that the check runs once before its first write (put or delete), with
the outcome kept in a small file under the local cache (``store-checks/``) for
``settings.STORE_CHECK_MAX_AGE`` seconds; a store that fails is refused for writing with
one line naming what failed and why it matters (StorageError, exit 4), and reads go on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from registry import layout
from registry.store import Identity, ObjectInfo, Store
from registry.writes import after_retry, backoff, is_ours, now
from softmax_core import settings
from softmax_core.atomicio import atomic_write
from softmax_core.errors import (
    PermissionDeniedError,
    PreconditionFailedError,
    SoftmaxPipeError,
    StorageError,
)

log = logging.getLogger(__name__)

TRIALS = 2  # only-if-absent races: a race that loses a write does not show every time
ROUNDS = 3  # appends per compare-and-swap racer
MAX_CAS_ATTEMPTS = 100  # per append; a racer that never gets through is a failure too
CACHE_FOLDER = "store-checks"

# Why each probe matters, said once: the second half of the line a failure prints.
WHY_ABSENT = (
    "two publishers could claim the same version number and one version would be lost silently"
)
WHY_CAS = "two racing alias moves or dataset adds could overwrite each other and lose one"
WHY_LOST = (
    "a publish whose answer the network lost would be taken for someone else's and "
    "published twice, or refused"
)


@dataclass(frozen=True)
class Probe:
    """One probe's outcome: what was asked, what was seen, and whether that is safe."""

    name: str  # "only-if-absent", "compare-and-swap", "lost answer"
    ok: bool
    seen: str  # what the store did, in words
    why: str  # why a failure matters

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAILED'}  {self.name}: {self.seen}"


@dataclass(frozen=True)
class CheckResult:
    """The probes of one check of the store at ``uri``, and what was left behind."""

    uri: str
    probes: tuple[Probe, ...]
    seconds: float
    leftovers: tuple[str, ...] = ()  # scratch keys the clean-up could not delete

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.probes)

    def failure(self) -> str:
        """The one line that refuses the store: the first failed probe, and why it matters."""
        bad = [p for p in self.probes if not p.ok]
        if not bad:
            return ""
        first = bad[0]
        more = f" ({' and '.join(p.name for p in bad[1:])} failed too)" if bad[1:] else ""
        return (
            f"{self.uri} failed the registry check: {first.name}: {first.seen}{more}; "
            f"{first.why}. Writing there is refused: use a store whose conditional writes "
            "hold, proven by `softmax-pipe registry check`"
        )


# --- the probes ------------------------------------------------------------------------


def check_store(
    store: Store,
    *,
    racers: int = settings.STORE_CHECK_RACERS,
    trials: int = TRIALS,
    rounds: int = ROUNDS,
) -> CheckResult:
    """Run the three probes in ``checks/<run id>/`` of ``store`` and remove what they wrote.

    A probe that the store refuses outright (no write access, unreachable) raises the
    store's own error: that is no verdict on its conditional writes."""
    start = time.perf_counter()
    scratch = f"{layout.CHECKS}{uuid.uuid4().hex}/"
    written: set[str] = set()
    tracked = _Tracking(store, written)
    _first_write(tracked, scratch)
    try:
        probes = (
            _only_if_absent(tracked, scratch, racers, trials),
            _compare_and_swap(tracked, scratch, racers, rounds),
            _lost_answer(tracked, scratch),
        )
    finally:
        leftovers = _clean(store, scratch, written)
    return CheckResult(store.uri, probes, time.perf_counter() - start, tuple(leftovers))


def _race(n: int, fn: Callable[[int], bool]) -> list[bool]:
    """Run ``fn(0..n-1)`` in ``n`` threads released together; their results, in order."""
    barrier = threading.Barrier(n)

    def go(i: int) -> bool:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=30)
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(go, range(n)))


def _first_write(store: Store, scratch: str) -> None:
    """One write alone before any race: a store that refuses writes (no rights on the
    scratch prefix, an endpoint gone) raises its error after one request and boto3's
    retries of it, not after every racer's (8 racers x 3 attempts, each time a registry
    task retries its first write).

    Nothing is cleaned up after it fails: a refused write left nothing, and a store that
    did not answer would not answer the clean-up's list, HEAD and delete either (each with
    its retries: minutes more). A write that may have landed unanswered leaves at most
    one small key under ``checks/``, which nothing reads (logged at debug level)."""
    key = f"{scratch}first.json"
    try:
        store.put(key, _body(first=True), if_none_match=True)
    except PreconditionFailedError:  # our own write, retried: it landed
        pass
    except PermissionDeniedError:  # refused: nothing written
        raise
    except SoftmaxPipeError:  # not answered: the command's one line says so
        log.debug("registry check: %s/%s may be left behind (no answer)", store.uri, key)
        raise


def _body(**fields: object) -> bytes:
    """A record unique to its writer (a random id in it), as the protocol's records are."""
    return json.dumps({"id": uuid.uuid4().hex, **fields}, sort_keys=True).encode()


def _only_if_absent(store: Store, scratch: str, racers: int, trials: int) -> Probe:
    def fail(seen: str) -> Probe:
        return Probe("only-if-absent", False, seen, WHY_ABSENT)

    for trial in range(1, trials + 1):
        key = f"{scratch}absent-{trial}.json"
        bodies = [_body(racer=i) for i in range(racers)]

        def write(i: int, key: str = key, bodies: list[bytes] = bodies) -> bool:
            try:
                store.put(key, bodies[i], if_none_match=True)
            except PreconditionFailedError as e:  # lost, or our own write retried
                return after_retry(e) and is_ours(store, key, bodies[i])
            return True

        won = [i for i, w in enumerate(_race(racers, write)) if w]
        if len(won) != 1:
            return fail(
                f"{len(won)} of {racers} racing writers won (trial {trial} of {trials}); "
                "exactly one must"
            )
        stored, _ = store.get(key)
        if stored != bodies[won[0]]:
            return fail(f"the key holds another writer's bytes than the winner's (trial {trial})")
    key = f"{scratch}absent-{trials}.json"
    try:
        store.put(key, _body(late=True), if_none_match=True)
    except PreconditionFailedError:
        pass
    else:
        return fail("a write to a key that exists was accepted")
    return Probe(
        "only-if-absent",
        True,
        f"exactly 1 of {racers} racing writers won, {trials} times out of {trials}; "
        "a write to an existing key was refused",
        WHY_ABSENT,
    )


def _compare_and_swap(store: Store, scratch: str, racers: int, rounds: int) -> Probe:
    key = f"{scratch}cas.json"
    first_etag = store.put(key, json.dumps([]).encode(), if_none_match=True)
    raced = _updates_alone(store, key) or _updates_racing(store, key, racers, rounds)
    if isinstance(raced, str):
        return Probe("compare-and-swap", False, raced, WHY_CAS)
    if stale := _stale_refused(store, key, first_etag, f"{scratch}cas-absent.json"):
        return Probe("compare-and-swap", False, stale, WHY_CAS)
    refused, made = raced
    return Probe(
        "compare-and-swap",
        True,
        f"{racers} racing writers made {made} updates, none lost ({refused} refused and "
        "retried); a stale ETag was refused",
        WHY_CAS,
    )


def _append(store: Store, key: str, entry: str) -> bool:
    """Read, add ``entry``, write only-if-the-ETag-matches; False when refused (True when
    the refusal answered the client's retry of our own write, as the protocol counts it)."""
    data, etag = store.get(key)
    body = json.dumps([*json.loads(data), entry]).encode()
    try:
        store.put(key, body, if_match=etag)
    except PreconditionFailedError as e:
        return after_retry(e) and is_ours(store, key, body)
    return True


def _updates_alone(store: Store, key: str) -> str | None:
    """With no one else writing, each update must go through."""
    for step in ("alone-1", "alone-2"):
        if not _append(store, key, step):
            return (
                "an update with the ETag just read was refused while no one else wrote "
                "(a read returned an older version)"
            )
    return None


def _updates_racing(store: Store, key: str, racers: int, rounds: int) -> str | tuple[int, int]:
    """``racers`` writers append ``rounds`` entries each: what went wrong, or (refusals
    seen, updates made)."""
    refused: list[int] = []

    def append(i: int) -> bool:
        for r in range(rounds):
            for attempt in range(MAX_CAS_ATTEMPTS):
                if _append(store, key, f"{i}.{r}"):
                    break
                refused.append(i)
                backoff(attempt)
            else:
                return False
        return True

    finished = _race(racers, append)
    if not all(finished):
        return (
            f"{finished.count(False)} of {racers} writers never got an update through in "
            f"{MAX_CAS_ATTEMPTS} attempts"
        )
    entries = json.loads(store.get(key)[0])
    expected = {"alone-1", "alone-2"} | {f"{i}.{r}" for i in range(racers) for r in range(rounds)}
    lost = len(expected - set(entries))
    if lost or len(entries) != len(expected):
        return (
            f"{lost} of {len(expected)} updates were lost with {racers} writers racing "
            f"({len(refused)} refusals seen)"
        )
    return len(refused), racers * rounds


def _stale_refused(store: Store, key: str, stale: str, absent: str) -> str | None:
    """A write with a stale ETag, and one to a key that does not exist, must be refused."""
    for target, what in (
        (key, "a write with a stale ETag was accepted"),
        (absent, "a write only-if-the-ETag-matches to a key that does not exist was accepted"),
    ):
        try:
            store.put(target, b"[]", if_match=stale)
        except PreconditionFailedError:
            continue
        return what
    return None


def _lost_answer(store: Store, scratch: str) -> Probe:
    def fail(seen: str) -> Probe:
        return Probe("lost answer", False, seen, WHY_LOST)

    def retried(key: str, body: bytes, *, if_match: str | None = None) -> Probe | None:
        """The write, then the same write again; None when the retry is refused and the
        bytes are recognised as the first attempt's."""
        store.put(key, body, if_none_match=if_match is None, if_match=if_match)
        try:
            store.put(key, body, if_none_match=if_match is None, if_match=if_match)
        except PreconditionFailedError:
            pass
        else:
            kind = "only-if-absent" if if_match is None else "compare-and-swap"
            return fail(f"the retry of a {kind} write that had landed was accepted")
        if not is_ours(store, key, body):
            return fail("after a write landed, reading the key did not return its bytes")
        if is_ours(store, key, _body()):
            return fail("another writer's bytes were taken for ours")
        return None

    created = f"{scratch}lost-created.json"
    if problem := retried(created, _body(kind="create")):
        return problem
    _, etag = store.get(created)
    if problem := retried(created, _body(kind="move"), if_match=etag):
        return problem
    return Probe(
        "lost answer",
        True,
        "a retried only-if-absent write and a retried compare-and-swap were refused, "
        "and the first attempts' bytes recognised as ours",
        WHY_LOST,
    )


class _Tracking(Store):
    """``store`` with every key written recorded, so the clean-up knows them even when the
    store's listing lags (SeaweedFS keeps listing an emptied folder for a while)."""

    def __init__(self, inner: Store, written: set[str]) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.written = written
        self.lock = threading.Lock()

    def get(self, key: str) -> tuple[bytes, str]:
        return self.inner.get(key)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        with self.lock:
            self.written.add(key)
        return self.inner.put(key, data, if_none_match=if_none_match, if_match=if_match)

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list_info(prefix)

    def children(self, prefix: str) -> Iterator[str]:
        return self.inner.children(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def _clean(store: Store, scratch: str, written: set[str]) -> list[str]:
    """Delete every scratch key (those listed, and those written that a HEAD still finds:
    a write the store refused left nothing to delete); the ones that stay."""
    keys: set[str] = set()
    with contextlib.suppress(SoftmaxPipeError):
        keys.update(store.list_keys(scratch))
    keys.update(key for key in written - keys if _may_exist(store, key))
    left = []
    for key in sorted(keys):
        try:
            store.delete(key)
        except SoftmaxPipeError as e:
            log.warning("registry check: could not delete %s: %s", key, e)
            left.append(key)
    return left


def _may_exist(store: Store, key: str) -> bool:
    """Whether ``key`` is there, or may be (the store did not answer)."""
    try:
        return store.head(key) is not None
    except SoftmaxPipeError:
        return True


# --- once before the first write ----------------------------------------------------------


def cache_file(cache_dir: Path, store: Store) -> Path:
    """Where the outcome of the check of ``store`` is kept (named by its URI and endpoint)."""
    where = f"{store.uri} {getattr(store, 'endpoint', '')}"
    return cache_dir / CACHE_FOLDER / f"{hashlib.sha256(where.encode()).hexdigest()[:32]}.json"


def remember(cache_dir: Path, store: Store, result: CheckResult) -> None:
    """Keep a passed check for the next process (best effort: a cache, not a record)."""
    if not result.ok:
        with contextlib.suppress(OSError):
            cache_file(cache_dir, store).unlink()
        return
    record = {"uri": store.uri, "passed": time.time(), "at": now(), "seconds": result.seconds}
    path = cache_file(cache_dir, store)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(record))
    except (OSError, StorageError) as e:
        log.warning("registry check passed but could not be remembered: %s", e)


def recently_passed(cache_dir: Path, store: Store, max_age: float) -> bool:
    try:
        record = json.loads(cache_file(cache_dir, store).read_bytes())
        return bool(
            record.get("uri") == store.uri and time.time() - float(record["passed"]) < max_age
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


class CheckedStore(Store):
    """A store whose first write waits for :func:`check_store` to pass (or for a pass of
    the same store recorded under ``cache_dir`` less than ``max_age`` seconds ago).

    A failed check refuses every write of this object with the check's one line
    (StorageError, exit 4); reads go straight to the store, checked or not."""

    def __init__(
        self,
        inner: Store,
        *,
        cache_dir: Path,
        max_age: float = settings.STORE_CHECK_MAX_AGE,
    ) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.cache_dir = cache_dir
        self.max_age = max_age
        self._lock = threading.Lock()
        self._verdict: str | None = None  # None: not checked yet; "": passed

    def ensure_checked(self) -> None:
        """Run the check (once per object; skipped when a recent pass is cached), or raise
        the failure line."""
        with self._lock:
            if self._verdict is None:
                self._verdict = self._decide()
        if self._verdict:
            raise StorageError(self._verdict)

    def _decide(self) -> str:
        if recently_passed(self.cache_dir, self.inner, self.max_age):
            return ""
        try:
            result = check_store(self.inner)
        except SoftmaxPipeError as e:  # the same error (its exit code), saying where it arose
            e.args = (
                f"the registry check of {self.uri}, run before its first write, could not "
                f"write its scratch prefix {layout.CHECKS}: {e}",
            )
            raise
        remember(self.cache_dir, self.inner, result)
        log.info("registry check of %s: %s", self.uri, "passed" if result.ok else "FAILED")
        return result.failure()

    # writes: checked first -------------------------------------------------------------
    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        self.ensure_checked()
        return self.inner.put(key, data, if_none_match=if_none_match, if_match=if_match)

    def delete(self, key: str) -> None:
        self.ensure_checked()
        self.inner.delete(key)

    def sweep(self, older_than: float) -> list[str]:
        self.ensure_checked()
        return self.inner.sweep(older_than)

    # reads: straight through -------------------------------------------------------------
    def get(self, key: str) -> tuple[bytes, str]:
        return self.inner.get(key)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def check_exists(self) -> None:
        self.inner.check_exists()

    def identity(self) -> Identity:
        return self.inner.identity()

    def etag(self, key: str) -> str | None:
        return self.inner.etag(key)

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list_info(prefix)

    def list_keys(self, prefix: str) -> Iterator[str]:
        return self.inner.list_keys(prefix)

    def children(self, prefix: str) -> Iterator[str]:
        return self.inner.children(prefix)

    def get_many(self, keys: Sequence[str]) -> list[tuple[bytes, str] | None]:
        return self.inner.get_many(keys)

    def url(self, key: str, *, expires: int, content_type: str | None = None) -> str | None:
        return self.inner.url(key, expires=expires, content_type=content_type)

    def close(self) -> None:
        self.inner.close()


def unchecked(store: Store) -> Store:
    """The store under a :class:`CheckedStore` (itself otherwise)."""
    return store.inner if isinstance(store, CheckedStore) else store
