"""User strings made safe to show: on a terminal, and in markdown (Prefect artifacts).

File names, folder names, model references and error reasons come from users (or from
whoever could write into a folder being read). Shown raw they can forge output: an ESC
sequence retitles or clears the operator's terminal, a carriage return overwrites the
line it is on, a newline starts a fake ``error:`` line; in markdown, a newline and a
code fence leave the block they were put in, and ``[text](javascript:...)`` or
``<img onerror=...>`` become a link or HTML in the Prefect UI.

- :func:`printable`: every character that is not printable (``str.isprintable``: C0 and
  C1 controls, DEL, format characters such as bidi overrides, line and paragraph
  separators, non-ASCII spaces, lone surrogates) as a visible backslash escape. Bytes of a
  file name that are not UTF-8 (``os.fsdecode``'s surrogates) come out as ``\\xNN``, the
  byte they were. The result is one line; printable text passes unchanged, and applying
  it twice changes nothing more (backslashes are left alone), so a line may go through it
  at every layer it crosses.
- :func:`unambiguous`: :func:`printable` with each backslash doubled first, so two
  different names never show alike (a name holding a newline is ``a\\nb``, a name
  holding a backslash and an ``n`` is ``a\\\\nb``): the names that identify rows. Not
  idempotent: applied once, where a name is read.
- :func:`markdown`: text for a paragraph, list item, table cell or link text:
  :func:`printable`, then every ASCII punctuation character backslash-escaped (CommonMark
  lets each be escaped, and then none of them means anything: no emphasis, link, HTML,
  table cell break, heading or fence).
- :func:`markdown_code`, :func:`markdown_block`: an inline code span or a fenced block
  holding the text verbatim (after :func:`printable`), its fence longer than any run of
  backticks inside, so nothing inside can close it.
- :func:`markdown_link`: a link only to ``http``, ``https`` or ``file`` URLs, its
  destination quoted; any other URL (``javascript:``, ``data:``) is shown as code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "markdown",
    "markdown_block",
    "markdown_code",
    "markdown_link",
    "printable",
    "unambiguous",
]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SURROGATE_BYTES = range(0xDC80, 0xDD00)  # os.fsdecode's stand-ins for bytes 0x80..0xff
_MARKDOWN_SPECIAL = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")  # string.punctuation
_BACKTICKS = re.compile(r"`+")
_LINK_SCHEMES = ("http://", "https://", "file://")


def _escape(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    if code in _SURROGATE_BYTES:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every non-printable character as a backslash escape (one line)."""
    if text.isprintable():
        return text  # the common case, at C speed
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def unambiguous(text: str) -> str:
    """:func:`printable` of ``text`` with its backslashes doubled first: one to one, so
    names that differ show differently (see the module docstring)."""
    return printable(text.replace("\\", "\\\\"))


def markdown(text: str) -> str:
    """``text`` as literal markdown inline text (see the module docstring)."""
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in printable(text))


def _fence_for(text: str, least: int) -> str:
    runs = [len(m) for m in _BACKTICKS.findall(text)]
    return "`" * max(least, max(runs, default=0) + 1)


def markdown_code(text: str) -> str:
    """``text`` as an inline code span showing exactly :func:`printable` of it."""
    body = printable(text)
    if not body:
        return "` `"  # an empty span is no span: show one space
    fence = _fence_for(body, 1)
    if body[0] in "` " or body[-1] in "` ":
        body = f" {body} "  # one space each side is stripped by the renderer
    return f"{fence}{body}{fence}"


def markdown_block(lines: Iterable[str]) -> str:
    """A fenced code block showing each of ``lines`` (:func:`printable`) on its own line."""
    body = [printable(line) for line in lines]
    fence = _fence_for("\n".join(body), 3)
    return "\n".join([fence, *body, fence])


def markdown_link(text: str, url: str) -> str:
    """``[text](url)`` for an http(s) or file URL; any other URL is shown as code, no link."""
    shown = printable(url)
    if not shown.lower().startswith(_LINK_SCHEMES):
        return f"{markdown(text)}: {markdown_code(url)}"
    quoted = shown.replace("\\", "\\\\").replace("<", "\\<").replace(">", "\\>")
    return f"[{markdown(text)}](<{quoted}>)"
