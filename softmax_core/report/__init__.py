"""Reports people look at: self-contained HTML pages with inline pictures.

- :func:`render_report`: a model on labelled test images (what it learned, where it errs,
  how sure it is, how it trained, against the champion, lineage);
  :func:`confusion_picture`: its confusion matrix alone, as a PNG.
- :func:`render_review_sheet`: a contact sheet of scored images for labelling.

Pure rendering: arrays, metrics and manifests in, one HTML string out (no file, no
network). matplotlib (Agg, no pyplot) is imported only when a picture is drawn.
"""

from softmax_core.report.model_report import confusion_picture, render_report
from softmax_core.report.review import ReviewItem, render_review_sheet

__all__ = ["ReviewItem", "confusion_picture", "render_report", "render_review_sheet"]
