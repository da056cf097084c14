"""Versioned model storage: stores (local folder, S3) and the registry protocol.

Layout (relative to the registry root, a folder or ``s3://bucket/prefix``)::

    blobs/sha256/<digest>.npz                          model file bytes, content-addressed
    models/<name>/versions/<n:08d>.json                 manifest, written once (only-if-absent)
    models/<name>/aliases/<alias>.json                  alias record, compare-and-swap
    models/<name>/aliases/<alias>.log/<seq:012d>.json   alias history, written once per move
    datasets/<name>/versions/<n:08d>.json               dataset manifest (its arrays: a blob)

Heavy imports (boto3) happen only when an S3 registry is opened.
"""

from registry.core import PullResult, Registry
from registry.datasets import AddResult
from registry.local import LocalStore
from registry.manifest import AliasRecord, DatasetManifest, Manifest
from registry.names import parse_ref, validate_key, validate_name
from registry.s3 import S3Store
from registry.schemes import open_store
from registry.store import ObjectInfo, Store

__all__ = [
    "AddResult",
    "AliasRecord",
    "DatasetManifest",
    "LocalStore",
    "Manifest",
    "ObjectInfo",
    "PullResult",
    "Registry",
    "S3Store",
    "Store",
    "open_store",
    "parse_ref",
    "validate_key",
    "validate_name",
]
