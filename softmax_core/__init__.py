"""The math and the data: pure numpy + Pillow. No Prefect, no S3."""

#: the public modules (``from softmax_core import model``), not imported here: each pulls
#: numpy or Pillow, and the CLI's ``--help`` needs neither
__all__ = [
    "errors",
    "gate",
    "images",
    "metrics",
    "mnist",
    "model",
    "names",
    "normalize",
    "preprocess",
    "report",
    "requests",
    "scoring",
    "settings",
    "sgd",
    "softmax",
    "train",
    "version",
]
