"""Where the registry keeps things, relative to its root (a folder or ``s3://bucket/prefix``)::

    blobs/sha256/<digest>.npz                       model file bytes, content-addressed
    models/<name>/versions/<n:08d>.json              manifest of version n (write-once)
    models/<name>/versions/<n:08d>.html              its report (self-contained HTML page)
    models/<name>/versions/<n:08d>.confusion.png     the report's confusion matrix, alone
    models/<name>/aliases/<alias>.json               alias record, moved by compare-and-swap
    models/<name>/aliases/<alias>.log/<seq:012d>.json  one entry per move (write-once)
    models/<name>/index/<page:06d>.json              copies of manifests 100p+1..100p+100
                                                     (write-once; a cache for listings)
    models/<name>/requests/<seq:012d>.json           a request to move an alias to a
                                                     version (write-once, numbered as
                                                     versions are claimed)
    models/<name>/decisions/<seq:012d>.json          the decision on request <seq>, approved
                                                     or rejected (write-once: the first one
                                                     stands)
    datasets/<name>/versions/<n:08d>.json            a labelled dataset version (write-once);
                                                     its arrays are a blob like a model's
    monitoring/<name>/profiles/<seq:012d>.json       the profile of one scoring run with
                                                     <name>'s versions (write-once, numbered
                                                     as versions are claimed; registry.monitoring)
    monitoring/<name>/references/<n:08d>.json        version n's reference profile on MNIST
                                                     test, for the drift check (write-once)
    checks/<run id>/...                              scratch of `registry check` (removed
                                                     when it ends; registry.check)

Version numbers are zero-padded to 8 digits so that a plain lexicographic listing (what
S3 returns) is also numeric order; numbers past 99,999,999 still parse (they just grow).

Rights follow the prefixes (``registry.rights``): a trainer's key writes ``blobs/``,
``versions/``, ``index/``, ``requests/`` and ``datasets/``; only an approver's writes
``aliases/`` (what scoring uses) and ``decisions/``. Keep them there.
"""

from __future__ import annotations

import re

from registry.names import validate_name
from softmax_core.errors import CorruptObjectError, InvalidNameError

BLOBS = "blobs/sha256/"
MODELS = "models/"
DATASETS = "datasets/"
MONITORING = "monitoring/"
CHECKS = "checks/"
VERSION_WIDTH = 8
SEQ_WIDTH = 12
INDEX_PAGE = 100  # versions per index page
PAGE_WIDTH = 6
REPORT_SUFFIXES = (".html", ".confusion.png")
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_NUMBERED_RE = re.compile(r"([0-9]+)\.json")


def validate_digest(digest: str) -> str:
    if not _DIGEST_RE.fullmatch(digest):
        raise CorruptObjectError(f"not a sha256 hex digest: {digest!r}")
    return digest


def blob_key(digest: str) -> str:
    return f"{BLOBS}{validate_digest(digest)}.npz"


def digest_of_blob_key(key: str) -> str | None:
    """The digest named by a blob key, or None for anything else under blobs/."""
    if not key.startswith(BLOBS) or not key.endswith(".npz"):
        return None
    digest = key[len(BLOBS) : -len(".npz")]
    return digest if _DIGEST_RE.fullmatch(digest) else None


def model_prefix(name: str) -> str:
    return f"{MODELS}{validate_name('model name', name)}/"


def versions_prefix(name: str) -> str:
    return f"{model_prefix(name)}versions/"


def _numbered(prefix: str, version: int) -> str:
    if version < 1:
        raise InvalidNameError(f"version must be >= 1, got {version}")
    return f"{prefix}{version:0{VERSION_WIDTH}d}.json"


def manifest_key(name: str, version: int) -> str:
    return _numbered(versions_prefix(name), version)


def report_key(name: str, version: int, suffix: str = ".html") -> str:
    """The version's report (``.html``) or a picture of it (``.confusion.png``): beside the
    manifest, never matching its pattern, so listings of versions skip them."""
    if suffix not in REPORT_SUFFIXES:
        raise InvalidNameError(f"report suffix must be one of {REPORT_SUFFIXES}, got {suffix!r}")
    return manifest_key(name, version).removesuffix(".json") + suffix


def aliases_prefix(name: str) -> str:
    return f"{model_prefix(name)}aliases/"


def alias_key(name: str, alias: str) -> str:
    return f"{aliases_prefix(name)}{validate_name('alias', alias)}.json"


def alias_log_prefix(name: str, alias: str) -> str:
    return f"{aliases_prefix(name)}{validate_name('alias', alias)}.log/"


def alias_log_key(name: str, alias: str, seq: int) -> str:
    return f"{alias_log_prefix(name, alias)}{seq:0{SEQ_WIDTH}d}.json"


def requests_prefix(name: str) -> str:
    return f"{model_prefix(name)}requests/"


def request_key(name: str, seq: int) -> str:
    if seq < 1:
        raise InvalidNameError(f"request number must be >= 1, got {seq}")
    return f"{requests_prefix(name)}{seq:0{SEQ_WIDTH}d}.json"


def decisions_prefix(name: str) -> str:
    return f"{model_prefix(name)}decisions/"


def decision_key(name: str, seq: int) -> str:
    """The decision on request ``seq``: a prefix of its own, which only approvers write."""
    if seq < 1:
        raise InvalidNameError(f"request number must be >= 1, got {seq}")
    return f"{decisions_prefix(name)}{seq:0{SEQ_WIDTH}d}.json"


def number_of(key: str, prefix: str) -> int | None:
    """``<prefix><digits>.json`` -> the number; anything else (temp files, junk) -> None."""
    if not key.startswith(prefix):
        return None
    m = _NUMBERED_RE.fullmatch(key[len(prefix) :])
    return int(m.group(1)) if m else None


def index_prefix(name: str) -> str:
    return f"{model_prefix(name)}index/"


def index_key(name: str, page: int) -> str:
    """The index page holding versions ``page*100+1 .. page*100+100``."""
    return f"{index_prefix(name)}{page:0{PAGE_WIDTH}d}.json"


def page_of(version: int) -> int:
    return (version - 1) // INDEX_PAGE


def dataset_versions_prefix(name: str) -> str:
    return f"{DATASETS}{validate_name('dataset name', name)}/versions/"


def dataset_manifest_key(name: str, version: int) -> str:
    return _numbered(dataset_versions_prefix(name), version)


def monitoring_prefix(name: str) -> str:
    """``monitoring/<name>/``: a valid model name cannot leave it (no ``/``, ``..``)."""
    return f"{MONITORING}{validate_name('model name', name)}/"


def profiles_prefix(name: str) -> str:
    return f"{monitoring_prefix(name)}profiles/"


def profile_key(name: str, seq: int) -> str:
    if seq < 1:
        raise InvalidNameError(f"profile number must be >= 1, got {seq}")
    return f"{profiles_prefix(name)}{seq:0{SEQ_WIDTH}d}.json"


def reference_key(name: str, version: int) -> str:
    """Version ``name:version``'s reference profile (MNIST test through it)."""
    return _numbered(f"{monitoring_prefix(name)}references/", version)
