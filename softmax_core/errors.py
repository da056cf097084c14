"""One exception hierarchy for softmax-pipe; the CLI maps each class to an exit code.

Every message names what was wrong and what to do about it. The tree (the README's
exit-code table is checked against it by ``tests/test_errors.py``)::

    SoftmaxPipeError                    base class; never raised bare
    ├── PartialFailure                  exit 1: some items failed, the rest succeeded
    ├── InvalidInputError               exit 2: bad arguments, shapes, values, files
    │   ├── DataFormatError             exit 2: a data or model file is corrupt or of the wrong format
    │   │   └── ImageError              exit 2: an image cannot be decoded or prepared
    │   └── InvalidNameError            exit 2: a model name, alias or key that is not allowed
    ├── NotFoundError                   exit 3: something named does not exist
    │   ├── DataNotFoundError           exit 3: a path (data source, image folder, model file) is missing
    │   ├── ModelNotFoundError          exit 3: unknown model, dataset, version or alias
    │   └── ObjectNotFoundError         exit 3: a store key does not exist (registry internals)
    ├── StorageError                    exit 4: the store failed (I/O, network, credentials)
    │   ├── DownloadError               exit 4: a download failed (network, HTTP status); retryable
    │   ├── IntegrityError              exit 4: bytes did not match their sha256 digest
    │   ├── CorruptObjectError          exit 4: a stored manifest or alias record is unreadable
    │   └── PreconditionFailedError     exit 4: a conditional write lost (only-if-absent / if-match)
    ├── ServiceUnavailableError         exit 4: the Prefect API or a Dask scheduler cannot be reached
    ├── GateFailedError                 exit 5: the accuracy gate refused a model
    ├── PipelineError                   exit 6: a run ended without its result (flow run crashed or
    │                                   cancelled, a scoring worker died)
    └── PermissionDeniedError           exit 77: the store refused this key (or user) an operation
                                        (S3 AccessDenied / 403, EACCES or EPERM on a folder)

Outside the tree, the CLI also exits 130 when interrupted (Ctrl-C, SIGTERM; an
:class:`Interrupted` says what was done before), 141 when
its reader closes stdout early (``| head``), and 70 when an unexpected exception escapes
(a bug: ``--debug`` shows its traceback).

This module imports nothing: every package may depend on it.
"""

from __future__ import annotations

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70  # EX_SOFTWARE: an exception that is not a SoftmaxPipeError
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: stdout closed early (``| head``), as a Unix tool exits


class SoftmaxPipeError(Exception):
    """Base class of every error softmax-pipe raises on purpose; only subclasses are raised."""

    exit_code: int = EXIT_INTERNAL


class PartialFailure(SoftmaxPipeError):
    """Some of the work failed; everything else completed and was written."""

    exit_code = 1


class InvalidInputError(SoftmaxPipeError, ValueError):
    """A value, argument or file the user gave is not acceptable; ``setting``: the
    ``(name, value)`` refused, when it is one value of a request (so that the CLI can name
    the settings file that gave it)."""

    exit_code = 2

    def __init__(self, *args: object, setting: tuple[str, object] | None = None) -> None:
        super().__init__(*args)
        self.setting = setting


class DataFormatError(InvalidInputError):
    """A data or model file exists but is corrupt or not in the expected format."""


class ImageError(DataFormatError):
    """One image cannot be turned into a digit; ``kind`` is a short category.

    Kinds: ``empty file``, ``not an image``, ``corrupt``, ``unreadable``, ``over pixel cap``,
    ``over Pillow's pixel cap``, ``over size cap``, ``blank``; the message is
    ``"<kind>: <detail>"``.
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail

    def __reduce__(self) -> tuple[object, ...]:  # picklable across worker processes
        return (type(self), (self.kind, self.detail))


OVER_PIXEL_CAP = "over pixel cap"  # the ImageError kind of an image over --max-pixels
# ... and of one Pillow refuses to open (over settings.PIXEL_CEILING): no --max-pixels helps
OVER_PILLOW_CAP = "over Pillow's pixel cap"


class InvalidNameError(InvalidInputError):
    """A model name, alias, reference or store key that is not allowed."""


class NotFoundError(SoftmaxPipeError, LookupError):
    """Something the user named does not exist."""

    exit_code = 3


class DataNotFoundError(NotFoundError):
    """A path is missing: a data source, an image folder, a model file, a cache entry."""


class ModelNotFoundError(NotFoundError):
    """A model or dataset, version or alias is not in the registry."""


class ObjectNotFoundError(NotFoundError):
    """A key is not in the store (the registry turns this into a ModelNotFoundError)."""


class StorageError(SoftmaxPipeError):
    """The store failed: I/O, network, credentials or a missing bucket."""

    exit_code = 4


class DownloadError(StorageError):
    """A download failed on the network (refused, timed out, HTTP error, cut short).

    The one storage error worth retrying on ingest: flows retry ingest on this class only.
    """


class IntegrityError(StorageError):
    """Stored bytes do not match their sha256 digest: never loaded silently."""


class CorruptObjectError(StorageError):
    """A stored manifest or alias record exists but cannot be parsed or is inconsistent."""


class PreconditionFailedError(StorageError):
    """A conditional write lost its race (the key exists, or its ETag changed).

    ``after_retry``: the store's client had retried the request, so its first attempt may
    have landed and the object may be the caller's own (``registry.writes``)."""

    after_retry: bool = False


class ServiceUnavailableError(SoftmaxPipeError):
    """The Prefect API (or its temporary server) or a Dask scheduler cannot be reached."""

    exit_code = 4


class GateFailedError(SoftmaxPipeError):
    """The evaluation gate refused the model: nothing was published."""

    exit_code = 5


class PipelineError(SoftmaxPipeError):
    """A flow run ended without a result and without one of the errors above."""

    exit_code = 6


class PermissionDeniedError(SoftmaxPipeError):
    """The store works, but refused this identity an operation: S3's AccessDenied (403),
    a folder's EACCES or EPERM. Exit 77 (``EX_NOPERM``).

    Not a :class:`StorageError`: retrying cannot help, and a key that may not write
    ``aliases/`` is how a registry keeps trainers from promoting (``registry.rights``).
    ``key``: the store key refused (None when unknown); ``write``: a write (put, delete)
    rather than a read; ``reason``: what the store said (``AccessDenied``, ``Permission
    denied``); ``hint``: the store's own advice when its rights are not keys (a folder's:
    its owner and mode), else empty. The message never holds a credential."""

    exit_code = 77

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        write: bool = True,
        reason: str = "",
        hint: str = "",
    ) -> None:
        super().__init__(message)
        self.key = key
        self.write = write
        self.reason = reason
        self.hint = hint

    def __reduce__(self) -> tuple[object, ...]:  # keeps the fields across processes
        return (_permission_denied, (str(self), self.key, self.write, self.reason, self.hint))


def _permission_denied(
    message: str, key: str | None, write: bool, reason: str, hint: str = ""
) -> PermissionDeniedError:
    return PermissionDeniedError(message, key=key, write=write, reason=reason, hint=hint)


def all_error_classes() -> list[type[SoftmaxPipeError]]:
    """Every class of the tree, depth first (the base class first)."""
    out: list[type[SoftmaxPipeError]] = []

    def walk(cls: type[SoftmaxPipeError]) -> None:
        out.append(cls)
        for sub in cls.__subclasses__():
            walk(sub)

    walk(SoftmaxPipeError)
    return out


class Interrupted(KeyboardInterrupt):
    """An interrupt (exit 130, outside the tree) after part of the work was done and kept:
    ``done`` says what (``after publishing mnist:3``), for the CLI's one line."""

    def __init__(self, done: str) -> None:
        super().__init__(done)
        self.done = done
