"""The registry: one class over a :class:`~registry.store.Store`, composed of the protocol's
parts, each written once as functions over the store that is passed in.

publish (here; the version number: ``registry.claim``)
    1. put the model file bytes at ``blobs/sha256/<digest>.npz`` (content-addressed);
    2. claim the next version: list ``versions/``, write ``<n>.json`` only-if-absent;
       on a conflict try the next number (after a few, list again; bounded); a retried
       write refused because its first attempt landed finds its own bytes and is done;
    3. check the blob is still there (a concurrent gc) and re-upload it if not;
    4. when the version completes a range of 100, write that range's index page;
    5. tell the listeners (``registry.events``); optionally promote an alias.
    The version becomes visible at step 2, after its blob exists: a crash before it leaves
    at worst an unreferenced blob, which gc removes after the grace period. A publish
    retried after its version was claimed (``claimed``: the manifest its earlier attempt's
    ``committed`` heard of) skips step 2: it finishes that version and claims no other.
reading (``registry.catalog``)
    names, versions (one listing plus the index pages, a cache), manifests, aliases and
    their history; ``name@alias`` resolves in 2 requests, ``name:n`` in 1.
aliases (``registry.aliases``)
    ``aliases/<alias>.json`` is moved by compare-and-swap, every move logged once in
    ``aliases/<alias>.log/<seq>.json``; rollback pops the ``previous`` stack. A promote to
    where the alias already is writes nothing (:class:`~registry.aliases.AliasMove`'s
    ``moved`` is False) and is no event; each move that happened is one. Each move names
    who made it (:meth:`Registry.actor`: the store's identity of the caller, plus ``by``).
requests and approvals (``registry.approvals``)
    a trainer's key, which may not write ``aliases/``, requests a move
    (``requests/<seq>.json``); an approver's key approves it (the decision written once,
    then the alias moved as by promote, the request recorded in the move) or rejects it.
rights (``registry.rights``)
    a store's refusal (exit 77) becomes one line naming the operation, the prefix it
    needed and who holds it.
pull (``registry.pullcache``)
    resolve the reference, then read the blob from the local content-addressed cache or
    download it, verify the sha256, and only then hand it out. A cache hit downloads
    nothing.
datasets (``registry.datasets``)
    the same protocol for labelled data; adds that race lose no image.
gc (``registry.gc``), reports (``registry.reports``)
    delete blobs that no manifest refers to and that are older than the grace period;
    the version's report pages beside its manifest.

What the parts share (the time stamp, backoff, telling a retried write of ours from
someone else's) is in ``registry.writes``. The store must make conditional writes atomic
(AWS S3, MinIO, SeaweedFS, the local store do).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry import aliases as alias_moves
from registry import approvals, catalog, events, layout, reports, rights
from registry import datasets as dataset_ops
from registry import gc as garbage
from registry.aliases import AliasMove
from registry.approvals import Approval, Pending, Requested
from registry.check import CheckedStore, CheckResult, check_store, remember, unchecked
from registry.claim import claim_next
from registry.datasets import AddResult
from registry.events import Listener, RegistryEvent, notify
from registry.manifest import Actor, AliasRecord, DatasetManifest, Decision, Manifest, RequestRecord
from registry.names import validate_name
from registry.pullcache import blob_cache_path, fetch_blob, sha256_hex
from registry.s3 import S3Store
from registry.schemes import open_store
from registry.store import Store
from registry.writes import now
from softmax_core import labelled, settings
from softmax_core.errors import InvalidInputError, SoftmaxPipeError
from softmax_core.labelled import Labelled
from softmax_core.model import INPUT_SCHEMA, Model
from softmax_core.modelcheck import read_model_bytes
from softmax_core.requests import Location, ModelRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullResult:
    manifest: Manifest
    path: Path
    cached: bool  # True: served from the local cache, nothing downloaded


class Registry:
    """Versioned, verifiable storage of models and labelled datasets on a local folder or an
    S3 bucket. It holds the store, the local pull cache and the listeners; each method is
    a thin call into the part that does the work (see the module docstring)."""

    def __init__(
        self, store: Store, *, cache_dir: Path, listeners: Sequence[Listener] = ()
    ) -> None:
        self.store = store
        self.cache_dir = Path(cache_dir).expanduser()
        self.uri = store.uri
        self.listeners = tuple(listeners)
        self._identity: Actor | None = None

    @classmethod
    def open(
        cls,
        uri: str,
        *,
        endpoint_url: str | None = None,
        cache_dir: Path | None = None,
        listeners: Sequence[Listener] = (),
    ) -> Registry:
        """A registry at a folder, ``file:///path`` or ``s3://bucket/prefix``.

        ``cache_dir``: origin pulled blobs are kept (default: the user's cache folder).
        ``listeners``: called with a :class:`~registry.events.RegistryEvent` after each
        publish and alias move (``flows.events`` forwards them to Prefect).

        An S3 store is proven by ``registry check`` before its first write (once; a pass
        is remembered under ``cache_dir`` for a week: ``registry.check.CheckedStore``),
        unless ``SOFTMAX_PIPE_STORE_CHECK=0``.
        """
        store = open_store(uri, endpoint_url=endpoint_url)
        cache = cache_dir or settings.default_cache_dir()
        if store.needs_check and settings.store_check_enabled():
            store = CheckedStore(store, cache_dir=Path(cache).expanduser())
        return cls(store, cache_dir=cache, listeners=listeners)

    @classmethod
    def at(cls, location: Location, *, listeners: Sequence[Listener] = ()) -> Registry:
        """The registry a request's :class:`~softmax_core.requests.Location` names (its
        registry and cache folder filled from the environment when not given)."""
        where = location.resolved()
        return cls.open(
            where.registry or "",
            endpoint_url=where.endpoint_url,
            cache_dir=Path(where.cache_dir or settings.default_cache_dir()),
            listeners=listeners,
        )

    def _emit(self, event: RegistryEvent) -> None:
        notify(self.listeners, event)

    def actor(self, by: str | None = None) -> Actor:
        """Who this registry's writes come from: the store's identity of the caller (STS
        ARN, access key id, local user; asked once) and ``by``, a name they give."""
        by = approvals.check_note("--by", by, approvals.MAX_NAME)
        if self._identity is None:
            who = self.store.identity()
            self._identity = Actor(identity=who.name, source=who.source)
        return dataclasses.replace(self._identity, by=by)

    def _doing(
        self, what: str, alias_hint: str | None = None, *, write_hint: str | None = None
    ) -> Any:
        """A refusal by the store inside becomes one line about ``what`` (``registry.rights``)."""
        return rights.doing(what, uri=self.uri, alias_hint=alias_hint, write_hint=write_hint)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ----------------------------------------------------------------------
    def models(self) -> list[str]:
        """Names of the models with at least one version, sorted."""
        return catalog.model_names(self.store)

    def version_numbers(self, name: str) -> list[int]:
        return catalog.version_numbers(self.store, name)

    def versions(self, name: str) -> list[Manifest]:
        """Every version of ``name``, oldest first (``registry.catalog.versions``: one
        listing plus the index pages). ModelNotFoundError if it has none."""
        return catalog.versions(self.store, name)

    def manifest(self, name: str, version: int) -> Manifest:
        return catalog.manifest(self.store, name, version)

    def resolve(self, ref: str) -> Manifest:
        """``name@alias`` | ``name:version`` | ``name`` (its newest version) -> its manifest."""
        return catalog.resolve(self.store, ref)

    def alias_record(self, name: str, alias: str) -> AliasRecord:
        return catalog.alias_record(self.store, name, alias)

    def aliases(self, name: str) -> dict[str, int]:
        """``{alias: version}`` for one model."""
        return catalog.alias_versions(self.store, name)

    def history(self, name: str, alias: str) -> list[AliasRecord]:
        """Every recorded move of ``name@alias``, oldest first."""
        return catalog.history(self.store, name, alias)

    # --- aliases ----------------------------------------------------------------------
    def promote(
        self,
        name: str,
        version: int,
        alias: str,
        *,
        repair: bool = False,
        by: str | None = None,
        comment: str | None = None,
        committed: Callable[[AliasRecord], None] | None = None,
    ) -> AliasMove:
        """Point ``name@alias`` at ``version`` (compare-and-swap; recorded in the history
        with who did it, :meth:`actor`, and ``comment``). ``committed`` hears of the move
        as soon as the alias record is written, as :meth:`publish`'s of a version.

        Returns where the alias points and whether this call moved it (a promote to where
        it already is writes nothing and tells no listener). ``repair``: replace a damaged
        alias record (``registry.aliases.promote``). A key that may not write ``aliases/``
        gets PermissionDeniedError saying how to request the move instead."""
        comment = approvals.check_note("--comment", comment, approvals.MAX_COMMENT)
        actor = self.actor(by)
        hint = (
            f"request it with `softmax-pipe registry request {name}:{version} {alias}`, "
            f"then an approver runs `softmax-pipe registry approve {name}:{version} {alias}`"
        )
        with self._doing(f"promoting {name}:{version} to {alias}", hint):
            move = alias_moves.promote(
                self.store,
                name,
                version,
                alias,
                repair=repair,
                actor=actor,
                comment=comment,
                committed=committed,
            )
        if move.moved:
            self._emit(events.alias_moved(self.uri, move.record))
        return move

    def rollback(
        self, name: str, alias: str, *, by: str | None = None, comment: str | None = None
    ) -> AliasRecord:
        """Move ``name@alias`` back to the version it pointed to before its last move
        (ModelNotFoundError, nothing written, when there is none)."""
        comment = approvals.check_note("--comment", comment, approvals.MAX_COMMENT)
        actor = self.actor(by)
        hint = f"an approver runs `softmax-pipe registry rollback {name}@{alias}`"
        with self._doing(f"rolling back {name}@{alias}", hint):
            record = alias_moves.rollback(self.store, name, alias, actor=actor, comment=comment)
        self._emit(events.alias_moved(self.uri, record))
        return record

    # --- requests and approvals (``registry.approvals``) --------------------------------
    def request(
        self,
        name: str,
        version: int,
        alias: str,
        *,
        by: str | None = None,
        comment: str | None = None,
        committed: Callable[[RequestRecord], None] | None = None,
    ) -> Requested:
        """Ask an approver to move ``name@alias`` to ``version``: a request record, which
        a trainer's key may write. The same open request is not made twice; an alias
        already there needs none (``Requested.record`` is None). ``committed`` hears of a
        new request as soon as its record is written, as :meth:`promote`'s of a move."""
        actor = self.actor(by)
        with self._doing(f"requesting {name}:{version} for {alias}"):
            done = approvals.request(
                self.store, name, version, alias, actor=actor, comment=comment, committed=committed
            )
        if done.created and done.record is not None and self.listeners:
            self._emit(events.requested(self.uri, done.record, self._alias_version(name, alias)))
        return done

    def requests(self, name: str, *, closed: bool = False) -> list[Pending]:
        """The open requests of ``name`` (every one, with its decision, if ``closed``)."""
        if closed:
            return approvals.requests(self.store, name)
        return approvals.open_requests(self.store, name)

    def not_carried_out(self, name: str, pending: list[Pending]) -> set[int]:
        """The numbers of the approved requests among ``pending`` whose alias move never
        happened (a crash between the two writes); approving one again carries it out."""
        return approvals.not_carried_out(self.store, name, pending)

    def approve(
        self,
        name: str,
        version: int,
        alias: str,
        *,
        by: str | None = None,
        comment: str | None = None,
        force: bool = False,
    ) -> Approval:
        """Carry out the open request to move ``name@alias`` to ``version``: the decision
        is written once, then the alias moves by compare-and-swap, the request recorded in
        the move. Refuses (InvalidInputError) a version that is no longer the newest
        candidate unless ``force``; ModelNotFoundError when no such request is open."""
        actor = self.actor(by)
        hint = (
            f"it takes an approver's key, one that may write {layout.aliases_prefix(name)} "
            f"and {layout.decisions_prefix(name)}"
        )
        with self._doing(f"approving {name}:{version} for {alias}", hint):
            done = approvals.approve(
                self.store, name, version, alias, actor=actor, comment=comment, force=force
            )
        if done.move.moved:
            self._emit(events.alias_moved(self.uri, done.move.record))
        for req, decision in done.superseded:
            self._emit(events.rejected(self.uri, req, actor, decision.at, decision.comment))
        return done

    def reject(
        self,
        name: str,
        version: int,
        alias: str,
        *,
        by: str | None = None,
        comment: str | None = None,
    ) -> list[tuple[RequestRecord, Decision]]:
        """Close the open requests to move ``name@alias`` to ``version`` as rejected."""
        actor = self.actor(by)
        hint = f"it takes an approver's key, one that may write {layout.decisions_prefix(name)}"
        with self._doing(f"rejecting {name}:{version} for {alias}", hint):
            done = approvals.reject(self.store, name, version, alias, actor=actor, comment=comment)
        for req, decision in done:
            self._emit(events.rejected(self.uri, req, actor, decision.at, decision.comment))
        return done

    def _alias_version(self, name: str, alias: str) -> int | None:
        try:
            return self.alias_record(name, alias).version
        except SoftmaxPipeError:
            return None

    # --- publishing -------------------------------------------------------------------
    def publish(
        self,
        model: Path | str | Model,
        name: str,
        *,
        alias: str | None = None,
        lineage: dict[str, Any] | None = None,
        by: str | None = None,
        committed: Callable[[Manifest], None] | None = None,
        claimed: Manifest | None = None,
    ) -> Manifest:
        """Store a model file as the next version of ``name`` (and point ``alias`` at it);
        the event names who published it (``by``, :meth:`actor`). ``committed`` hears of
        the version as soon as its manifest is written (the version exists from then on,
        whatever stops the rest: the blob's check, the event, the alias).

        ``claimed``: the version an earlier attempt of this same publish claimed (what its
        ``committed`` heard of) before it failed; this attempt finishes that version and
        returns it, claiming none (InvalidInputError if it is not this model's version).
        Without it, the same bytes published again are a new version."""
        validate_name("model name", name)
        if alias is not None:
            validate_name("alias", alias)
        approvals.check_note("--by", by, approvals.MAX_NAME)  # before anything is written
        with self._doing(f"publishing {name}"):
            manifest = self._publish(model, name, lineage, committed, claimed)
        if self.listeners:  # who published: asked (STS) only to tell someone, once done
            self._emit(events.published(self.uri, manifest, self.actor(by)))
        if alias is not None:
            self.promote(name, manifest.version, alias, by=by)
        return manifest

    def _publish(
        self,
        model: Path | str | Model,
        name: str,
        lineage: dict[str, Any] | None,
        committed: Callable[[Manifest], None] | None,
        claimed: Manifest | None,
    ) -> Manifest:
        if isinstance(model, Model):
            data = model.to_bytes()
            mf = Model.from_bytes(data, origin=f"model for {name!r}")
        else:
            data = read_model_bytes(Path(model))
            mf = Model.from_bytes(data, origin=str(model))
        extra_lineage = dict(lineage or {})
        try:
            json.dumps(extra_lineage)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"lineage must be JSON-serialisable: {e}") from e

        digest = sha256_hex(data)
        blob = layout.blob_key(digest)
        if claimed is not None and (claimed.name, claimed.digest) != (name, digest):
            raise InvalidInputError(
                f"{claimed.ref} holds sha256 {claimed.digest[:12]}..., not this model "
                f"({name!r}, sha256 {digest[:12]}...): it is no earlier attempt of this publish"
            )
        self.store.put(blob, data)  # always (re)written: refreshes its age for gc, heals damage

        if claimed is not None:  # an earlier attempt of this publish claimed it: finish it
            manifest = claimed
        else:
            manifest = self._claim_version(self._draft(mf, name, digest, len(data), extra_lineage))
            if committed is not None:
                committed(manifest)

        # A gc that listed before our blob write could have deleted the (old, orphaned)
        # blob after it: make sure the version we just made visible has its bytes.
        info = self.store.head(blob)
        if info is None or info.size != len(data):
            log.warning("blob %s vanished during publish (concurrent gc?); uploading again", blob)
            self.store.put(blob, data)

        if manifest.version % layout.INDEX_PAGE == 0:
            self._close_index_page(name)
        return manifest

    @staticmethod
    def _draft(
        mf: Model, name: str, digest: str, size: int, extra_lineage: dict[str, Any]
    ) -> Manifest:
        """The manifest of ``mf`` (its bytes: ``digest``, ``size``) before its version is
        claimed (version 0, no time stamp)."""
        made = mf.info
        base_lineage = {"data_source": made.data_source} if made.data_source else {}
        return Manifest(
            name=name,
            version=0,
            digest=digest,
            created="",
            data_digest=made.data_digest,
            params=dict(made.params),
            metrics=dict(made.metrics),
            preprocessing={"steps": mf.steps.to_json()},
            input_schema=dict(INPUT_SCHEMA),
            code_version=made.code_version,
            lineage={**base_lineage, **extra_lineage},
            size=size,
            model_created=made.created,
        )

    def _close_index_page(self, name: str) -> None:
        """This version completed a range of 100: write its index page (best effort)."""
        catalog.close_index_page(self.store, name)

    def _claim_version(self, draft: Manifest) -> Manifest:
        name = draft.name
        return claim_next(
            self.store,
            what=repr(name),
            numbers=lambda: self.version_numbers(name),
            key_of=lambda n: layout.manifest_key(name, n),
            make=lambda n: dataclasses.replace(draft, version=n, created=now()),
        )

    # --- pulling ----------------------------------------------------------------------
    def blob_cache_path(self, digest: str) -> Path:
        return blob_cache_path(self.cache_dir, digest)

    def fetch(self, ref: str) -> PullResult:
        """Resolve and download (or find in the cache) a model; the bytes are verified."""
        manifest = self.resolve(ref)
        path, cached, _ = fetch_blob(self.store, self.cache_dir, manifest)
        return PullResult(manifest=manifest, path=path, cached=cached)

    def pull(self, ref: str) -> tuple[Manifest, Path]:
        """``(manifest, path of the verified model file in the local cache)``."""
        result = self.fetch(ref)
        return result.manifest, result.path

    def load(self, ref: str) -> tuple[Manifest, Model]:
        """Resolve, pull, verify and parse (``allow_pickle=False``) a model; the model's
        ``ref`` is the version's (``mnist:3``)."""
        manifest = self.resolve(ref)
        path, _, data = fetch_blob(self.store, self.cache_dir, manifest)
        origin = f"{manifest.ref} ({path})"
        return manifest, Model.from_bytes(data, origin=origin, ref=manifest.ref)

    def model(self, ref: str) -> Model:
        """``ref`` (``mnist@champion``, ``mnist:3``) pulled, verified and ready to predict."""
        return self.load(ref)[1]

    # --- datasets (``registry.datasets``) ---------------------------------------------
    def datasets(self) -> list[str]:
        """Names of the datasets with at least one version, sorted."""
        return dataset_ops.dataset_names(self.store)

    def dataset_numbers(self, name: str) -> list[int]:
        return dataset_ops.dataset_numbers(self.store, name)

    def dataset_versions(self, name: str) -> list[DatasetManifest]:
        """Every version of dataset ``name``, oldest first; ModelNotFoundError if none."""
        return dataset_ops.dataset_versions(self.store, name)

    def dataset_manifest(self, name: str, version: int) -> DatasetManifest:
        return dataset_ops.dataset_manifest(self.store, name, version)

    def resolve_dataset(self, ref: str) -> DatasetManifest:
        """``name`` (its newest version) or ``name:version`` -> its manifest."""
        return dataset_ops.resolve_dataset(self.store, ref)

    def load_dataset(self, ref: str) -> tuple[DatasetManifest, Labelled]:
        """Resolve, pull (verified against the manifest's sha256) and parse a dataset."""
        return dataset_ops.load_dataset(self.store, self.cache_dir, ref)

    def add_dataset(self, name: str, data: Labelled) -> AddResult:
        """Merge ``data`` into the newest version of ``name``; a new version if it changed
        (concurrent adds never lose each other's images)."""
        with self._doing(f"adding to dataset {name}"):
            return dataset_ops.add_dataset(self.store, self.cache_dir, name, data)

    def add_folder(
        self, name: str, folder: Path | str, *, progress: labelled.Progress | None = None
    ) -> tuple[AddResult, labelled.FolderData]:
        """Read a labelled folder (or an ``s3://`` prefix laid out as one, on the
        registry's S3 endpoint) and add it to ``name``; unreadable images are left out and
        listed in the FolderData's ``failures``. A refused read of the source names the
        source (outside :meth:`_doing`, which speaks of the registry's keys)."""
        validate_name("dataset name", name)
        inner = unchecked(self.store)
        endpoint = inner.endpoint_url if isinstance(inner, S3Store) else None
        read = dataset_ops.read_source(folder, progress=progress, endpoint_url=endpoint)
        with self._doing(f"adding to dataset {name}"):
            return dataset_ops.add_dataset(self.store, self.cache_dir, name, read.data), read

    # --- upkeep -----------------------------------------------------------------------
    def check(self, *, racers: int = settings.STORE_CHECK_RACERS) -> CheckResult:
        """Prove the store's conditional writes now (``registry.check.check_store``) and
        remember the outcome, as the check before a first write does; the result says
        what each probe saw. Nothing stays behind in the store."""
        inner = unchecked(self.store)
        result = check_store(inner, racers=racers)
        remember(self.cache_dir, inner, result)
        return result

    def gc(self, *, grace_seconds: float = 3600.0, dry_run: bool = False) -> list[str]:
        """Delete blobs no manifest refers to and older than ``grace_seconds``; return their
        keys (``registry.gc.collect``)."""
        hint = "gc deletes blobs: run it with a key that may delete under blobs/ (an admin's)"
        with self._doing("collecting unreferenced blobs", write_hint=hint):
            return garbage.collect(self.store, grace_seconds=grace_seconds, dry_run=dry_run)

    def put_report(
        self, name: str, version: int, html: str, *, confusion_png: bytes | None = None
    ) -> str:
        """Store ``name:version``'s report page (and its confusion-matrix picture) beside
        its manifest; return the page's key."""
        with self._doing(f"storing the report of {name}:{version}"):
            return reports.put_report(self.store, name, version, html, confusion_png=confusion_png)

    def report_url(
        self,
        name: str,
        version: int,
        *,
        suffix: str = ".html",
        expires: int = settings.REPORT_URL_SECONDS,
    ) -> str | None:
        """Where a browser opens the version's report or its confusion matrix; None if it
        has none (``registry.reports.report_url``)."""
        return reports.report_url(self.store, name, version, suffix=suffix, expires=expires)


def open_model(ref: ModelRef) -> Model:
    """The model a reference names: a model file (``.npz``, verified, no pickles), or a
    registry reference pulled (verified, cached) from the registry at ``ref.location``.

    Raises ModelNotFoundError / DataNotFoundError (exit 3) when it does not exist.
    """
    if ref.is_file:
        return Model.load(ref.ref)
    with Registry.at(ref.location) as reg:
        return reg.model(ref.ref)
