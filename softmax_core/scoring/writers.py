"""Output: CSV or JSON Lines rows, to stdout or atomically to a file."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO, cast

from softmax_core.atomicio import atomic_open, check_output, prepare_output
from softmax_core.errors import InvalidInputError, StorageError
from softmax_core.images import is_image_name
from softmax_core.model import N_CLASSES
from softmax_core.scoring.decode import ScoredBatch

COLUMNS = ("path", "label", "confidence", "status", "error", "model")
PROB_COLUMNS = tuple(f"p{i}" for i in range(N_CLASSES))
REJECT_COLUMN = "p_reject"  # after p9, for a model with the class "not a digit" (11 classes)


class RowWriter:
    """Formats scored batches as CSV (with a header) or JSON Lines onto a text stream.

    Every row names the ``model`` that scored it (``mnist:3``, or a model file's path), so
    an output read later says which version produced it. Rows of status ``ok``,
    ``error`` and ``rejected`` (empty label, the "not a digit" probability as confidence,
    or none for a blank page; the reason in ``error``). With ``probs``, ``p0``..``p9``,
    and ``p_reject`` when the model has ``classes=11``: a 10-class model's columns and
    rows are the same as before the reject option."""

    def __init__(
        self,
        stream: TextIO,
        fmt: str = "csv",
        *,
        model: str,
        probs: bool = False,
        classes: int = N_CLASSES,
    ) -> None:
        self.stream = stream
        self.fmt = fmt
        self.model = model
        self._model_cell = neutralise(model)
        self._model_json = json.dumps(model, ensure_ascii=False)
        self.probs = probs
        self.classes = classes
        self._prob_names = PROB_COLUMNS + ((REJECT_COLUMN,) if classes > N_CLASSES else ())
        self.columns = COLUMNS + (self._prob_names if probs else ())
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None

    def header(self) -> None:
        if self._csv is not None:
            self._csv.writerow(self.columns)

    def write(self, batch: ScoredBatch) -> None:
        labels = batch.labels.tolist()
        conf = batch.confidence.tolist()
        probs = batch.probs.tolist() if self.probs else None
        rejects = batch.rejects or [None] * len(batch)
        names = self._prob_names
        if self._csv is not None:
            rows = []
            for i, rel in enumerate(batch.rels):
                err, why = batch.errors[i], rejects[i]
                if why is not None:
                    c = "" if conf[i] != conf[i] else f"{conf[i]:.6f}"
                    row = [neutralise(rel), "", c, "rejected", why, self._model_cell]
                    if probs is not None:
                        row.extend([f"{p:.6f}" for p in probs[i]] if c else [""] * len(names))
                elif err is None:
                    row = [neutralise(rel), labels[i], f"{conf[i]:.6f}", "ok", "", self._model_cell]
                    if probs is not None:
                        row.extend(f"{p:.6f}" for p in probs[i])
                else:
                    row = [neutralise(rel), "", "", "error", err, self._model_cell]
                    if probs is not None:
                        row.extend([""] * len(names))
                rows.append(row)
            self._csv.writerows(rows)
            return
        lines = []
        null_probs = "".join(f', "{name}": null' for name in names)
        for i, rel in enumerate(batch.rels):
            err, why = batch.errors[i], rejects[i]
            head = '{"path": ' + json.dumps(rel, ensure_ascii=False)
            scored = err is None and conf[i] == conf[i]  # ok, or rejected by the model
            if why is None and err is None:
                line = f'{head}, "label": {labels[i]}, "confidence": {conf[i]:.6f}, '
                line += f'"status": "ok", "error": "", "model": {self._model_json}'
            else:
                c = f"{conf[i]:.6f}" if scored else "null"
                status = "rejected" if why is not None else "error"
                line = f'{head}, "label": null, "confidence": {c}, "status": "{status}", '
                line += '"error": ' + json.dumps(why or err, ensure_ascii=False)
                line += f', "model": {self._model_json}'
            if probs is not None:
                if scored:
                    line += "".join(
                        f', "{name}": {p:.6f}' for name, p in zip(names, probs[i], strict=True)
                    )
                else:
                    line += null_probs
            lines.append(line + "}\n")
        self.stream.write("".join(lines))


def check_output_path(
    output: str | Path,
    *,
    inputs: Path | None = None,
    model: str | None = None,
    queue: str | None = None,
) -> None:
    """Fail before any work when ``--output`` cannot be written where it says, or when it
    would overwrite what is being read: the model file, or one of the scored images; or
    what the run writes besides: the review ``queue`` (its contact sheet, its copies).

    The output check every command shares (:func:`softmax_core.atomicio.check_output`: a
    folder, a name ending in ``/``, the model file are exit 2), then the images; then its
    missing folders are made (:func:`softmax_core.atomicio.prepare_output`): a file where a
    folder should be is exit 2, a folder that cannot be made or written exit 4. ``output``
    as the user typed it (a ``Path`` has lost a trailing slash)."""
    check_output(output, option="--output", reads={"the model file": model})
    target = Path(os.path.realpath(output))
    if inputs is not None and os.path.exists(inputs):
        root = Path(os.path.realpath(inputs))
        if target == root or (
            root.is_dir() and target.is_relative_to(root) and is_image_name(target.name)
        ):
            raise InvalidInputError(
                f"--output {output} is one of the images being scored; choose another name"
            )
    if queue is not None and target.is_relative_to(os.path.realpath(queue)):
        raise InvalidInputError(
            f"--output {output} is inside the review queue {queue}, which the run writes "
            "(its contact sheet, the images' copies); choose another name"
        )
    prepare_output(output)


@contextlib.contextmanager
def open_output(output: Path | None) -> Iterator[TextIO]:
    """stdout, or ``output`` written atomically (:func:`softmax_core.atomicio.atomic_open`).

    A crash, an interrupt or an error leaves no file that looks complete: ``output`` is
    untouched. A symlink's target is replaced; a device or FIFO is written through.
    """
    if output is None:
        rows = cast(TextIO, _Stdout())
        yield rows
        rows.flush()
        return
    check_output_path(output)
    with atomic_open(output, "w", newline="") as stream:
        yield cast(TextIO, stream)


class _Stdout:
    """``sys.stdout`` for the rows, naming itself when it fails: a write or flush that
    cannot be done (a full disk, ``> /dev/full``) is a StorageError (exit 4), as for a file;
    a reader that went away (BrokenPipeError) stays itself, for the CLI's quiet exit 141."""

    def write(self, text: str) -> int:
        with _naming_stdout():
            return sys.stdout.write(text)

    def flush(self) -> None:
        with _naming_stdout():
            sys.stdout.flush()


@contextlib.contextmanager
def _naming_stdout() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        raise StorageError(f"cannot write stdout: {e.strerror or e}") from e


def check_stdout() -> None:
    """Rows for stdout need one: a closed stdout (``>&-``) is a StorageError (exit 4)."""
    if sys.stdout is None:
        raise StorageError("cannot write stdout: it is closed; name a file with --output")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """A CSV cell a spreadsheet would run as a formula, made inert (OWASP: prefix ``'``)."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell
