"""Report pages beside the versions they describe (a mixin of :class:`registry.core.Registry`).

``models/<name>/versions/<n>.html`` is the version's self-contained report and
``<n>.confusion.png`` its confusion matrix alone (for an image artifact). Unlike a
manifest they may be rewritten: a report can be drawn again. Listings of versions never
see them (their names do not match a manifest's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry import layout
from registry.store import Store
from softmax_core import settings

if TYPE_CHECKING:
    from softmax_core.errors import ModelNotFoundError


class Reports:
    """The reports half of :class:`registry.core.Registry` (a mixin over its store)."""

    store: Store

    if TYPE_CHECKING:

        def _no_version(self, name: str, version: int) -> ModelNotFoundError: ...

    def put_report(
        self, name: str, version: int, html: str, *, confusion_png: bytes | None = None
    ) -> str:
        """Store version ``name:version``'s report page (and its confusion-matrix picture)
        beside its manifest; return the page's key. Rewritable: a report can be redone."""
        if self.store.head(layout.manifest_key(name, version)) is None:
            raise self._no_version(name, version)
        if confusion_png is not None:
            self.store.put(layout.report_key(name, version, ".confusion.png"), confusion_png)
        key = layout.report_key(name, version)
        self.store.put(key, html.encode("utf-8"))
        return key

    def report_url(
        self,
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
        if self.store.head(key) is None:
            return None
        kind = "text/html; charset=utf-8" if suffix == ".html" else "image/png"
        return self.store.url(key, expires=expires, content_type=kind)
