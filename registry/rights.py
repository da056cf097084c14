"""Who may write what in a registry: the rights live where the bytes live.

The store enforces them (SeaweedFS identities, AWS IAM, MinIO policies; a folder's owner
and mode); the registry only knows their shape, so that a refusal becomes one line that
says what was being done, which prefix it needed and who may write it (exit 77), e.g.
``promoting mnist:3 to champion needs write access to models/mnist/aliases/ in s3://b/reg
(denied: AccessDenied); request it with ...``.

Two roles, by key pattern under the registry root (``registry.layout``; ``*`` is any
run of characters, as IAM and SeaweedFS match it)::

    trainer   blobs/*  models/*/versions/*  models/*/index/*  models/*/requests/*  datasets/*
              monitoring/*  checks/*
    approver  models/*/aliases/*  models/*/decisions/*  checks/*

Both read and list everything. A trainer publishes (blob, manifest, index page, report),
adds datasets and requests, and stores the profiles scoring runs leave (``monitoring/``,
``registry.monitoring``: the deployment's scheduled scoring runs with the worker's
trainer key); only an approver moves an alias (promote, approve, rollback) and decides
requests (approve, reject). Both write and delete ``checks/``: the scratch prefix where
``registry check`` proves the store before a key's first write (``registry.check``);
nothing the registry reads lives there. A key that may not write ``monitoring/`` scores
as before, and the summary says the profile was not stored. The README gives the
policies for SeaweedFS, AWS IAM and MinIO, and ``tests/registry/test_rights.py`` holds them to these
patterns and to the keys the operations really write.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from contextlib import contextmanager

from registry import layout
from softmax_core.errors import PermissionDeniedError

SCRATCH = layout.CHECKS + "*"  # registry check's probes, before a key's first write
TRAINER = (
    "blobs/*",
    "models/*/versions/*",
    "models/*/index/*",
    "models/*/requests/*",
    "datasets/*",
    "monitoring/*",
    SCRATCH,
)
APPROVER = ("models/*/aliases/*", "models/*/decisions/*", SCRATCH)
ROLES = {"trainer": TRAINER, "approver": APPROVER}


def may_write(role: str, key: str) -> bool:
    """Whether ``role``'s patterns allow writing ``key`` (``*`` also matches ``/``)."""
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in ROLES[role])


def prefix_of(key: str) -> str:
    """The prefix a right is granted on, for a key: ``models/<name>/<part>/`` for a
    model's keys, ``blobs/``, ``datasets/``, ``checks/``; else the key's folder."""
    parts = key.split("/")
    if parts[0] == "models" and len(parts) >= 4:
        return "/".join(parts[:3]) + "/"
    if parts[0] in ("blobs", "datasets", layout.CHECKS.rstrip("/")) and len(parts) >= 2:
        return parts[0] + "/"
    return "/".join(parts[:-1]) + "/" if len(parts) > 1 else key


def holders(key: str) -> str:
    """Who may write ``key``, for a message: an approver, a trainer, or either."""
    roles = [role for role in ROLES if may_write(role, key)]
    if not roles:
        return "an administrator"
    return " or ".join(f"an {r}" if r[0] in "aeiou" else f"a {r}" for r in roles)


def denied(
    e: PermissionDeniedError,
    doing: str,
    *,
    uri: str,
    alias_hint: str | None = None,
    write_hint: str | None = None,
) -> PermissionDeniedError:
    """``e`` said as one line: what was being done, the access and prefix it needed, who
    holds it; ``alias_hint`` replaces the last part when a write an approver may make was
    refused (e.g. how to request the move instead), ``write_hint`` when any write was."""
    if e.write and e.key is not None and e.key.startswith(layout.CHECKS):
        # the registry check's own line says what it was doing; add who may write there
        return PermissionDeniedError(
            f"{doing}: {e}; every key that writes needs write access to {layout.CHECKS} "
            "(see the README's Rights)",
            key=e.key,
            write=e.write,
            reason=e.reason,
        )
    access = "write" if e.write else "read"
    where = prefix_of(e.key) if e.key else "the registry"
    if e.write and write_hint:
        hint = write_hint
    elif e.write and e.key is not None and may_write("approver", e.key) and alias_hint:
        hint = alias_hint
    elif e.hint:  # the store's rights are not keys (a folder's owner and mode)
        hint = e.hint
    elif e.write and e.key is not None:
        hint = f"it takes the key of {holders(e.key)} (see the README's Rights)"
    else:
        hint = "check which keys may read this registry (see the README's Rights)"
    reason = f" (denied: {e.reason})" if e.reason else ""
    return PermissionDeniedError(
        f"{doing} needs {access} access to {where} in {uri}{reason}; {hint}",
        key=e.key,
        write=e.write,
        reason=e.reason,
        hint=e.hint,
    )


@contextmanager
def doing(
    what: str, *, uri: str, alias_hint: str | None = None, write_hint: str | None = None
) -> Iterator[None]:
    """Run the block; a refusal inside becomes :func:`denied`'s one line about ``what``."""
    try:
        yield
    except PermissionDeniedError as e:
        raise denied(e, what, uri=uri, alias_hint=alias_hint, write_hint=write_hint) from None
