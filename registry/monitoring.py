"""The watch on every scored batch: profiles beside the output and in the registry, the
drift check against the model's reference, and the drift event.

Keys (``registry.layout``)::

    monitoring/<name>/profiles/<seq:012d>.json   a scoring run's profile, with its drift
                                                 check (write-once, numbered as versions
                                                 are claimed: ``registry.claim``)
    monitoring/<name>/references/<n:08d>.json    version n's reference profile: MNIST test
                                                 through the model (write-once)

The reference of a registry version is computed the first time a run needs it (from the
MNIST at hand: ``$SOFTMAX_PIPE_MNIST``, a settings file's ``mnist``, or the cache; never a
download) and stored beside the version, so later runs only read it; a model file's is
kept in the local cache under ``monitoring/references/<sha256 of the file>.json``.
Without MNIST a run's drift is "not checked", with the reason.

What fails here never fails the run: the rows are written by then. A profile the store
refuses (a key without write access to ``monitoring/``) is one line in the summary.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from registry import events, layout, rights
from registry.claim import claim_next
from registry.core import Registry
from registry.store import Store
from softmax_core import settings
from softmax_core.atomicio import atomic_write
from softmax_core.errors import (
    DataFormatError,
    ObjectNotFoundError,
    PreconditionFailedError,
    SoftmaxPipeError,
)
from softmax_core.model import Model
from softmax_core.monitoring import Profile, check_drift, not_checked
from softmax_core.names import parse_ref
from softmax_core.requests import ModelRef, ScoringRequest
from softmax_core.scoring.profile import profile_path
from softmax_core.scoring.summary import ScoreSummary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Numbered:
    seq: int
    profile: Profile

    def to_bytes(self) -> bytes:
        return self.profile.to_bytes()


def put_profile(store: Store, name: str, profile: Profile) -> str:
    """Store a run's profile as the next ``monitoring/<name>/profiles/<seq>.json``
    (only-if-absent, the next number on a conflict); return its key."""
    done = claim_next(
        store,
        what=f"a profile of {name!r}",
        numbers=lambda: profile_numbers(store, name),
        key_of=lambda n: layout.profile_key(name, n),
        make=lambda n: _Numbered(n, profile),
    )
    return layout.profile_key(name, done.seq)


def profile_numbers(store: Store, name: str) -> list[int]:
    prefix = layout.profiles_prefix(name)
    found = (layout.number_of(k, prefix) for k in store.list_keys(prefix))
    return sorted(n for n in found if n is not None)


@dataclass(frozen=True)
class History:
    """``name``'s stored profiles, oldest first, as ``(seq, profile)``; ``unreadable``:
    keys that did not parse (skipped, named)."""

    name: str
    profiles: tuple[tuple[int, Profile], ...]
    unreadable: tuple[str, ...] = ()


def history(store: Store, name: str, *, last: int | None = None) -> History:
    """The profiles of scoring runs with ``name`` (the ``last`` ones when given)."""
    numbers = profile_numbers(store, name)
    if last is not None:
        numbers = numbers[-last:] if last > 0 else []
    keys = [layout.profile_key(name, n) for n in numbers]
    got: list[tuple[int, Profile]] = []
    bad: list[str] = []
    for n, key, found in zip(numbers, keys, store.get_many(keys), strict=True):
        if found is None:
            continue
        try:
            got.append((n, Profile.from_bytes(found[0], key)))
        except DataFormatError:
            bad.append(key)
    return History(name, tuple(got), tuple(bad))


def stored_reference(store: Store, name: str, version: int) -> Profile | None:
    key = layout.reference_key(name, version)
    try:
        data, _ = store.get(key)
    except ObjectNotFoundError:
        return None
    try:
        return Profile.from_bytes(data, key)
    except DataFormatError as e:
        log.warning("ignoring a damaged reference profile: %s", e)
        return None


def put_reference(store: Store, name: str, version: int, profile: Profile) -> str:
    """Store version ``name:version``'s reference once (the first writer's stands)."""
    key = layout.reference_key(name, version)
    # another run may have stored it first: the same numbers, from the same bytes
    with contextlib.suppress(PreconditionFailedError):
        store.put(key, profile.to_bytes(), if_none_match=True)
    return key


# --- the reference, from MNIST test ------------------------------------------------------


def mnist_reference(model: Model, *, source: str | None, cache_dir: Path) -> Profile | str:
    """The model's profile on MNIST test, or why there is none: MNIST from ``source``
    (``$SOFTMAX_PIPE_MNIST``, a settings file), else the MNIST already cached; never
    downloaded for this."""
    from softmax_core.mnist import load_mnist
    from softmax_core.mnist.cache import entries_by_use
    from softmax_core.scoring.profile import reference_profile

    if source is None and not entries_by_use(Path(cache_dir).expanduser() / "mnist"):
        return (
            "the model has no reference profile and no MNIST is at hand to make one "
            f"(set {settings.ENV_MNIST}, or run `softmax-pipe ingest` once)"
        )
    try:
        ds = load_mnist(source, cache_dir=Path(cache_dir).expanduser())
    except SoftmaxPipeError as e:
        return f"the model has no reference profile and MNIST could not be loaded: {e}"
    return reference_profile(model, ds.x_test, input=_through(model))


def _through(model: Model) -> str:
    return f"MNIST test through {model.ref}"


def _file_reference(model: Model, path: str, source: str | None, cache: Path) -> Profile | str:
    """A model file's reference, kept in the local cache by the file's sha256: under the
    name it is scored with now (the same bytes may have had another name when it was made)."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    kept = cache / "monitoring" / "references" / f"{digest}.json"
    if kept.is_file():
        try:
            found = Profile.from_bytes(kept.read_bytes(), str(kept))
        except DataFormatError:
            pass  # made again below
        else:
            return replace(found, model=model.ref, input=_through(model))
    made = mnist_reference(model, source=source, cache_dir=cache)
    if isinstance(made, Profile):
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(kept, made.to_bytes())
        except (OSError, SoftmaxPipeError) as e:  # a read-only cache: made again next time
            log.info("reference profile not kept in the cache: %s", e)
    return made


# --- after a run -------------------------------------------------------------------------


@dataclass(frozen=True)
class Watched:
    """What the watch did: the profile with its drift check, where it was written, what
    could not be done (one line each), and the drift event when one was sent."""

    profile: Profile
    places: tuple[str, ...]
    problems: tuple[str, ...]
    event: events.RegistryEvent | None = None


def watch(
    profile: Profile,
    model: Model,
    ref: ModelRef,
    *,
    output: str | None,
    listeners: Sequence[events.Listener] = (),
    alpha: float = settings.DRIFT_ALPHA,
) -> Watched:
    """Check ``profile`` (a finished run's, with ``model``) for drift against the model's
    reference, write it beside ``output`` (``<output>.profile.json``, a local file; none
    beside a device, FIFO or pipe such as ``/dev/null`` or ``/dev/stdout``) and,
    for a registry model, under ``monitoring/<name>/profiles/``; tell ``listeners`` when
    drift is flagged (``softmax-pipe.scoring.drift``). Never raises for a store failure:
    it becomes one of ``problems``."""
    where = ref.location.resolved()
    cache = Path(where.cache_dir or settings.default_cache_dir()).expanduser()
    source = settings.resolve("mnist").value
    places: list[str] = []
    problems: list[str] = []
    reg: Registry | None = None
    name: str | None = None
    try:
        try:
            if ref.is_file:
                found = _file_reference(model, ref.ref, source, cache)
            else:
                name, _, version = parse_ref(model.ref)  # the version that scored: name:N
                reg = Registry.at(ref.location)
                found = _registry_reference(reg.store, model, name, version, source, cache)
        except (OSError, SoftmaxPipeError) as e:
            found = f"the model's reference profile could not be read or made: {e}"
        drift = (
            check_drift(profile, found, alpha=alpha)
            if isinstance(found, Profile)
            else not_checked(found, alpha=alpha)
        )
        profile = profile.with_drift(drift)
        path = profile_path(output)
        if path is not None:
            try:
                atomic_write(path, profile.to_bytes())
                places.append(str(path))
            except SoftmaxPipeError as e:  # atomic_write's: "cannot write PATH: why"
                problems.append(str(e))
            except OSError as e:
                problems.append(f"cannot write {path}: {e.strerror or e}")
        if reg is not None and name is not None:
            try:
                with rights.doing(f"storing this run's profile with {model.ref}", uri=reg.uri):
                    key = put_profile(reg.store, name, profile)
                places.append(f"{reg.uri.rstrip('/')}/{key}")
            except SoftmaxPipeError as e:
                problems.append(str(e))
        event = None
        if drift.flagged:
            event = events.scoring_drift(reg.uri if reg is not None else None, profile, places)
            events.notify(listeners, event)
        return Watched(profile, tuple(places), tuple(problems), event)
    finally:
        if reg is not None:
            reg.close()


def watch_summary(
    summary: ScoreSummary,
    model: Model,
    request: ScoringRequest,
    listeners: Sequence[events.Listener] = (),
) -> Watched:
    """:func:`watch` on a finished run's summary (its counts), its outcome kept in the
    summary for its lines and JSON."""
    profile = summary.counts.profile(model=model.ref, input=request.input)
    done = watch(profile, model, request.model, output=request.output.path, listeners=listeners)
    summary.profile = done.profile
    summary.profile_places = done.places
    summary.profile_problems = done.problems
    return done


def _registry_reference(
    store: Store, model: Model, name: str, version: int | None, source: str | None, cache: Path
) -> Profile | str:
    if version is None:  # a model opened by reference resolves to name:N; be safe
        return mnist_reference(model, source=source, cache_dir=cache)
    kept = stored_reference(store, name, version)
    if kept is not None:
        return kept
    made = mnist_reference(model, source=source, cache_dir=cache)
    if isinstance(made, Profile):
        try:
            put_reference(store, name, version, made)
        except SoftmaxPipeError as e:  # read-only key: computed again next time
            log.info("reference profile of %s not stored: %s", model.ref, e)
    return made
