"""One exception hierarchy for softmax-pipe; the CLI maps each class to an exit code.

Every message names what was wrong and what to do about it. The tree::

    SoftmaxPipeError                    base class; exit 1 when raised bare
    ├── PartialFailure                  exit 1: some items failed, the rest succeeded
    ├── InvalidInputError               exit 2: bad arguments, shapes, values, files
    │   ├── DataFormatError             exit 2: a data file is corrupt or of the wrong format
    │   └── InvalidNameError            exit 2: a model name, alias or key that is not allowed
    ├── NotFoundError                   exit 3: something named does not exist
    │   ├── DataNotFoundError           exit 3: a data source, file or folder is missing
    │   ├── ModelNotFoundError          exit 3: unknown model, version or alias
    │   └── ObjectNotFoundError         exit 3: a store key does not exist (registry internals)
    ├── StorageError                    exit 4: the store failed (I/O, network, credentials)
    │   ├── DownloadError               exit 4: a download failed (network, HTTP status); retryable
    │   ├── IntegrityError              exit 4: bytes did not match their sha256 digest
    │   ├── CorruptObjectError          exit 4: a stored manifest or alias record is unreadable
    │   └── PreconditionFailed          exit 4: a conditional write lost (only-if-absent / if-match)
    └── GateFailedError                 exit 5: the accuracy gate refused a model

This module imports nothing heavy: every package may depend on it.
"""

from __future__ import annotations


class SoftmaxPipeError(Exception):
    """Base class of every error softmax-pipe raises on purpose."""

    exit_code: int = 1


class PartialFailure(SoftmaxPipeError):
    """Some of the work failed; everything else completed and was written."""

    exit_code = 1


class InvalidInputError(SoftmaxPipeError, ValueError):
    """A value, argument or file the user gave is not acceptable."""

    exit_code = 2


class DataFormatError(InvalidInputError):
    """A data file exists but is corrupt or not in the expected format."""


class InvalidNameError(InvalidInputError):
    """A model name, alias, reference or store key that is not allowed."""


class NotFoundError(SoftmaxPipeError, LookupError):
    """Something the user named does not exist."""

    exit_code = 3


class DataNotFoundError(NotFoundError):
    """A data source, file or folder is missing."""


class ModelNotFoundError(NotFoundError):
    """A model, version or alias is not in the registry."""


class ObjectNotFoundError(NotFoundError):
    """A key is not in the store (the registry turns this into a ModelNotFoundError)."""


class StorageError(SoftmaxPipeError):
    """The store failed: I/O, network, credentials or a missing bucket."""

    exit_code = 4


class DownloadError(StorageError):
    """A download failed on the network (refused, timed out, HTTP error, cut short).

    The one storage error worth retrying: flows retry ingest on this class only.
    """


class IntegrityError(StorageError):
    """Stored bytes do not match their sha256 digest: never loaded silently."""


class CorruptObjectError(StorageError):
    """A stored manifest or alias record exists but cannot be parsed or is inconsistent."""


class PreconditionFailed(StorageError):
    """A conditional write lost its race (the key exists, or its ETag changed)."""


class GateFailedError(SoftmaxPipeError):
    """The evaluation gate refused the model: nothing was published."""

    exit_code = 5
