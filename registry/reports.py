"""Report pages beside the versions they describe: functions over a
:class:`~registry.store.Store`.

``models/<name>/versions/<n>.html`` is the version's self-contained report and
``<n>.confusion.png`` its confusion matrix alone (for an image artifact). Unlike a
manifest they may be rewritten: a report can be drawn again. Listings of versions never
see them (their names do not match a manifest's).
"""

from __future__ import annotations

from registry import layout
from registry.catalog import no_version
from registry.store import Store
from softmax_core import settings


def put_report(
    store: Store, name: str, version: int, html: str, *, confusion_png: bytes | None = None
) -> str:
    """Store version ``name:version``'s report page (and its confusion-matrix picture)
    beside its manifest; return the page's key. Rewritable: a report can be redone."""
    if store.head(layout.manifest_key(name, version)) is None:
        raise no_version(store, name, version)
    if confusion_png is not None:
        store.put(layout.report_key(name, version, ".confusion.png"), confusion_png)
    key = layout.report_key(name, version)
    store.put(key, html.encode("utf-8"))
    return key


def report_url(
    store: Store,
    name: str,
    version: int,
    *,
    suffix: str = ".html",
    expires: int = settings.REPORT_URL_SECONDS,
) -> str | None:
    """Where a browser opens the version's report (``.html``) or its confusion matrix
    (``.confusion.png``): a presigned URL on S3, ``file://`` for a folder; None if the
    version has none (published without the training flow, or before reports)."""
    key = layout.report_key(name, version, suffix)
    if store.head(key) is None:
        return None
    kind = "text/html; charset=utf-8" if suffix == ".html" else "image/png"
    return store.url(key, expires=expires, content_type=kind)
