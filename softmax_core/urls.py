"""URLs in messages: shown without their credentials, and refused when malformed.

A URL may carry a credential (``https://user:password@host/``) and, in its query, a
signature. An error line, a log record or a Prefect artifact that shows it must leave
them out, and must do so for the URLs that are wrong too: those are the ones that end
up in error messages. urllib's ``urlsplit`` ends the authority at the first ``/``, ``?``
or ``#`` (RFC 3986), so a password holding one of them (``https://u:pa/ss@host/``)
splits as host ``u`` and port ``pa``, its ``.port`` raises a ValueError quoting the
password, and the rest of the password lands in the path.

- :func:`redact`: the URL as messages show it: scheme, host, port and (optionally) path;
  everything between ``//`` and the **last** ``@`` goes, wherever ``urlsplit`` would
  have put it, so a password holding ``/``, ``?``, ``#`` or ``@`` goes whole; a query is
  shown as ``?…``, a fragment (without a query) as ``#…``. Never raises: whatever it cannot read becomes
  :data:`UNSHOWN`, never the original.
- :func:`url_problem` / :func:`check_url`: what makes a URL unusable (a scheme not
  allowed, no host, a port that is no number, an ``@`` past the host, spaces or control
  characters, credentials where none belong; with ``bare``, anything after the port but
  a ``/``), as an InvalidInputError (exit 2) naming the URL as :func:`redact` shows it.

The one place URLs are made safe to show: the registry (endpoints, registry URIs,
webhooks), the flows (a Dask address) and the MNIST download use it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from softmax_core.errors import InvalidInputError
from softmax_core.escaping import printable

__all__ = ["UNSHOWN", "check_url", "redact", "url_problem"]

UNSHOWN = "<a URL that cannot be shown>"
HTTP = ("http", "https")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_AUTHORITY_END = re.compile(r"[/?#]")
_ENCODE_HINT = (
    "percent-encode a '/', '?', '#' or '@' in a user name or password: %2F, %3F, %23, %40"
)


def redact(url: object, *, path: bool = True) -> str:
    """``url`` without anything that may be a credential: ``scheme://host[:port][/path]``
    (``path=False``: without the path, which may hold a token), ``?…`` when it had a
    query, ``#…`` when it had only a fragment, one printable line. Any string is accepted; never raises."""
    try:
        return printable(_redact(str(url), path))
    except Exception:  # shown in messages: it must never fail, nor echo the URL
        return UNSHOWN


def _redact(url: str, path: bool) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        scheme, rest = "", url  # no authority to find: still, nothing before an '@' is shown
    rest = rest.rpartition("@")[2]
    end = _AUTHORITY_END.search(rest)
    authority, tail = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    after = re.search(r"[?#]", tail)
    route = tail[: after.start()] if after else tail
    shown = (f"{scheme.lower()}://" if scheme else "") + authority
    if path:
        shown += route
    return shown + (f"{after.group()}…" if after else "")


def url_problem(
    url: str, *, schemes: Sequence[str] = HTTP, credentials: bool = False, bare: bool = False
) -> str | None:
    """Why ``url`` is not a usable URL of one of ``schemes`` with a host (and, unless
    ``credentials``, no ``user:password@``; with ``bare``, nothing after the host and port
    but a ``/``: no path, query or fragment), as the end of a sentence; None when it is."""
    wanted = " or ".join(f"{s}://" for s in schemes) + " with a host"
    if not isinstance(url, str) or not url:
        return f"is empty; expected {wanted}"
    if not url.isprintable() or any(c.isspace() for c in url):
        return "holds spaces or control characters (percent-encode them)"
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in schemes:
        return f"must be {wanted}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL (a malformed host)"
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is no number
    except ValueError:
        return f"is not a valid URL: its port is not a number from 0 to 65535 ({_ENCODE_HINT})"
    if not parts.hostname:
        return f"has no host; expected {wanted}"
    if "@" in rest[len(parts.netloc) :]:
        return f"is ambiguous: it has an '@' after its host ({_ENCODE_HINT})"
    if "@" in parts.netloc and not credentials:
        return "must not embed credentials (user:password@)"
    if bare:
        tail = rest[len(parts.netloc) :]
        extra = [
            what
            for what, there in (
                ("a path", parts.path not in ("", "/")),
                ("a query ('?…')", "?" in tail),
                ("a fragment ('#…')", "#" in tail),
            )
            if there
        ]
        if extra:
            only = "http(s)" if tuple(schemes) == HTTP else "|".join(schemes)
            return f"has {' and '.join(extra)}; it must be {only}://host[:port], nothing after"
    return None


def check_url(
    url: str,
    what: str,
    *,
    schemes: Sequence[str] = HTTP,
    credentials: bool = False,
    bare: bool = False,
    setting: str | None = None,
) -> str:
    """``url`` as :func:`redact` shows it, when :func:`url_problem` finds nothing; else
    InvalidInputError (exit 2): ``<what> '<redacted url>' <the problem>``, whose
    ``setting`` is ``(setting, url)`` when the URL is that value of a request."""
    problem = url_problem(url, schemes=schemes, credentials=credentials, bare=bare)
    if problem is not None:
        refused = None if setting is None else (setting, url)
        raise InvalidInputError(f"{what} {redact(url)!r} {problem}", setting=refused)
    return redact(url)
