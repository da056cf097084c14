"""Versioned model storage: stores (local folder, S3) and the registry protocol.

Layout (relative to the registry root, a folder or ``s3://bucket/prefix``; every key in
``registry.layout``)::

    blobs/sha256/<digest>.npz                          model file bytes, content-addressed
    models/<name>/versions/<n:08d>.json                 manifest, written once (only-if-absent)
    models/<name>/aliases/<alias>.json                  alias record, compare-and-swap
    models/<name>/aliases/<alias>.log/<seq:012d>.json   alias history, written once per move
    models/<name>/requests/<seq:012d>.json              a promotion request (written once)
    models/<name>/decisions/<seq:012d>.json             its decision (written once)
    datasets/<name>/versions/<n:08d>.json               dataset manifest (its arrays: a blob)
    monitoring/<name>/profiles/<seq:012d>.json          a scoring run's profile (written once)
    monitoring/<name>/references/<n:08d>.json           version n's reference profile

The parts, by composition, never by inheritance: a :class:`Store` (``registry.store``, one
class per scheme: ``registry.local``, ``registry.s3``; ``open_store`` in
``registry.schemes`` picks one from a URI), and the protocol written once as functions
over a store passed in: ``registry.catalog`` (reading), ``registry.aliases`` (moves),
``registry.claim`` (version numbers), ``registry.datasets``, ``registry.gc``,
``registry.reports``, ``registry.monitoring`` (profiles of scoring runs), sharing
``registry.writes``. :class:`Registry` holds a store, the
pull cache and the listeners, and calls into them.

Heavy imports (boto3) happen only when an S3 registry is opened.
"""

from registry.aliases import AliasMove
from registry.core import PullResult, Registry, open_model
from registry.datasets import AddResult
from registry.local import LocalStore
from registry.manifest import AliasRecord, DatasetManifest, Manifest
from registry.names import parse_ref, validate_key, validate_name
from registry.s3 import S3Store
from registry.schemes import open_store
from registry.store import ObjectInfo, Store

__all__ = [
    "AddResult",
    "AliasMove",
    "AliasRecord",
    "DatasetManifest",
    "LocalStore",
    "Manifest",
    "ObjectInfo",
    "PullResult",
    "Registry",
    "S3Store",
    "Store",
    "open_model",
    "open_store",
    "parse_ref",
    "validate_key",
    "validate_name",
]
