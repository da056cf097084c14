"""Every default of softmax-pipe, defined once, and the settings built from them at the edges.

The CLI, the flows, ``deploy/prefect.yaml`` (checked against this module by a test) and
the README read their defaults from here. Nothing here runs at import time: the
environment is read by :meth:`Settings.build`, called at a CLI or flow entry.

Environment variables (``ENV_*`` below):

- ``SOFTMAX_PIPE_MNIST``: the MNIST source when no ``--source`` is given
  (``keras``, ``download``, a folder of IDX files, or an ``.npz``).
- ``SOFTMAX_PIPE_CACHE``: cache folder (default: the user's cache dir).
- ``SOFTMAX_PIPE_REGISTRY``: registry URI (default: a folder in the user's data dir).
- ``SOFTMAX_PIPE_MODEL``: the model ``score`` uses (default ``mnist@champion``).
- ``SOFTMAX_PIPE_DASK_ADDRESS``: a Dask scheduler for scoring shards.
- ``SOFTMAX_PIPE_PROJECT_DIR``: the checkout a Prefect worker runs deployments from.
- ``SOFTMAX_PIPE_DEBUG``: ``1`` shows tracebacks instead of one-line errors.
- ``SOFTMAX_PIPE_WEBHOOK_URL``: one or more URLs (spaces or commas between them) that
  registry events are posted to, signed with ``SOFTMAX_PIPE_WEBHOOK_SECRET``
  (:func:`webhook_settings`).
- ``SOFTMAX_PIPE_STORE_CHECK``: ``0`` skips the registry check an S3 registry gets before
  its first write (``registry.check``; for test suites and stores proven another way).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ENV_MNIST = "SOFTMAX_PIPE_MNIST"
ENV_CACHE = "SOFTMAX_PIPE_CACHE"
ENV_FEATURES = "SOFTMAX_PIPE_FEATURES"
ENV_REGISTRY = "SOFTMAX_PIPE_REGISTRY"
ENV_MODEL = "SOFTMAX_PIPE_MODEL"
ENV_DASK_ADDRESS = "SOFTMAX_PIPE_DASK_ADDRESS"
ENV_PROJECT_DIR = "SOFTMAX_PIPE_PROJECT_DIR"
ENV_DEBUG = "SOFTMAX_PIPE_DEBUG"
ENV_WEBHOOK_URL = "SOFTMAX_PIPE_WEBHOOK_URL"
ENV_WEBHOOK_SECRET = "SOFTMAX_PIPE_WEBHOOK_SECRET"
ENV_STORE_CHECK = "SOFTMAX_PIPE_STORE_CHECK"

APP_NAME = "softmax-pipe"

# --- registry names ---------------------------------------------------------------------------
MODEL_NAME = "mnist"
ALIAS = "champion"
MODEL_REF = f"{MODEL_NAME}@{ALIAS}"
# What a training run does with a model that passes the gate, once published: move the
# alias to it, request the move from an approver (a trainer's key), or nothing more.
TARGET_ACTIONS = ("promote", "request", "publish")
TARGET_ACTION: Final = "promote"

# --- training (SoftmaxRegression's hyperparameters) ---------------------------------------------
EPOCHS = 4
BATCH_SIZE = 128
LEARNING_RATE = 0.5
MOMENTUM = 0.9
DECAY = 1.0
L2 = 1e-5
AVERAGE = True
# What the model sees: the names of softmax_core.preprocess.FEATURE_SETS (tested).
FEATURE_NAMES = ("pixels", "deskew", "hog")
FEATURES: Final = "hog"
SEED = 0
# Each training image of a user's dataset counts this many times (by default it is
# repeated in every epoch: oversampling). Users' datasets are small next to MNIST's
# 60,000; benchmarks/own_data.py measures x1 .. x20 (README).
DATA_WEIGHT = 10
# How: "oversample" (repeat the image) or "loss" (one copy, its loss weighted); measured
# side by side in benchmarks/own_data.py.
DATA_WEIGHTING: Final = "oversample"
DATA_WEIGHTINGS = ("oversample", "loss")
# The dataset a labelled inbox is synced into (scheduled retraining, ``run --inbox``).
INBOX_DATASET = "inbox"

# --- the gate --------------------------------------------------------------------------------
MIN_ACCURACY = 0.95
ALPHA = 0.05
# The floor on each dataset's holdout. Lower than MNIST's: a user's holdout is small (a
# few dozen to hundreds of images: +-4 points of noise at 100) and its domain is harder;
# high enough to refuse a model that is not fit for that domain (an MNIST-only model gets
# 60-80% on printed or scanned digits; trained on them it gets 97%+, benchmarks/own_data.py).
DATASET_MIN_ACCURACY = 0.90
# How long a report link works on S3 (a presigned URL: whoever holds it reads the page
# without credentials): long enough for the morning after a night's retrain, short enough
# that a link copied from an artifact, a log or an event is dead by the next day.
# `softmax-pipe registry show NAME:N` prints a fresh one. A local registry's links are
# file:// paths and do not expire.
REPORT_URL_SECONDS = 12 * 3600

# --- registry ------------------------------------------------------------------------------
# `registry gc --grace` under this many seconds needs --force: a blob is written before the
# manifest that refers to it, so a publish or dataset add under way could lose its blob.
GC_MIN_GRACE = 60.0
# `registry check` (registry.check): this many threads race each conditional write; a
# store that passed is trusted for writing this long before it is checked again
# (a server can be upgraded or replaced behind the same endpoint).
STORE_CHECK_RACERS = 8
STORE_CHECK_MAX_AGE = 7 * 24 * 3600.0

# --- webhooks (registry.webhooks) ------------------------------------------------------------
# A delivery is retried with backoff for at most this many seconds after the event, then
# given up with one warning line; a command waits at most about this long, after its
# output, for its deliveries.
WEBHOOK_RETRY_SECONDS = 10.0
WEBHOOK_ATTEMPT_SECONDS = 5.0  # one POST: connect and answer

# --- flows: I/O task retries -----------------------------------------------------------------
IO_RETRIES = 3
IO_RETRY_DELAY = 2.0  # seconds before the first retry; doubled for each next one

# --- scoring ---------------------------------------------------------------------------------
SCORE_BATCH_SIZE = 256
MIN_CONFIDENCE = 0.5
MAX_PIXELS = 4096 * 4096  # 16.7 MP: any phone photo; refuses decompression bombs
# `dataset add` hashes whole files: a larger one is refused before it is read (16-bit RGBA
# at MAX_PIXELS is 128 MiB uncompressed).
MAX_IMAGE_BYTES = 256 * 1024 * 1024
SHARD_SIZE = 4096
SCORE_FORMATS = ("csv", "jsonl")
SCORE_FORMAT: Final = "csv"

# --- deployments -----------------------------------------------------------------------------
RETRAIN_CRON = "0 3 * * 1"  # Mondays, 03:00
SCORE_CRON = "0 6 * * *"  # every day, 06:00
TIMEZONE = "UTC"
WORK_POOL = "process"


def default_cache_dir() -> Path:
    """The user's cache folder for softmax-pipe (``~/.cache/softmax-pipe`` on Linux)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(APP_NAME, appauthor=False))


def default_data_dir() -> Path:
    """The user's data folder for softmax-pipe (``~/.local/share/softmax-pipe`` on Linux)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def default_registry_dir() -> Path:
    """The default local registry (``~/.local/share/softmax-pipe/registry`` on Linux)."""
    return default_data_dir() / "registry"


def default_labelled_dir() -> Path:
    """The labelled inbox the scheduled retraining syncs (``<data dir>/labelled``)."""
    return default_data_dir() / "labelled"


def default_inbox_dir() -> Path:
    """The default inbox a scheduled scoring run reads (``<data dir>/inbox``)."""
    return default_data_dir() / "inbox"


def default_outbox_file() -> Path:
    """The default CSV a scheduled scoring run writes (``<data dir>/outbox/scores.csv``)."""
    return default_data_dir() / "outbox" / "scores.csv"


def debug_enabled(env: Mapping[str, str] | None = None) -> bool:
    """True when ``SOFTMAX_PIPE_DEBUG`` asks for tracebacks."""
    value = (os.environ if env is None else env).get(ENV_DEBUG, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def store_check_enabled(env: Mapping[str, str] | None = None) -> bool:
    """False when ``SOFTMAX_PIPE_STORE_CHECK`` turns the pre-write registry check off."""
    value = (os.environ if env is None else env).get(ENV_STORE_CHECK, "")
    return value.strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class WebhookSettings:
    """Where registry events are posted (``urls``, empty: nowhere) and the key that signs
    them (``secret``; never printed: not part of the repr)."""

    urls: tuple[str, ...] = ()
    secret: str | None = field(default=None, repr=False)


def webhook_settings(env: Mapping[str, str] | None = None) -> WebhookSettings:
    """The webhooks from ``SOFTMAX_PIPE_WEBHOOK_URL`` (one or more URLs, separated by
    spaces or commas) and ``SOFTMAX_PIPE_WEBHOOK_SECRET``. The one place they are read,
    so a settings file can supply them through here too."""
    env = os.environ if env is None else env
    urls = tuple(u for u in env.get(ENV_WEBHOOK_URL, "").replace(",", " ").split() if u)
    secret = env.get(ENV_WEBHOOK_SECRET) or None
    return WebhookSettings(urls=urls, secret=secret)


@dataclass(frozen=True)
class Settings:
    """Resolved settings: explicit values win over the environment, which wins over defaults."""

    source: str | None
    cache_dir: Path
    registry: str
    registry_is_default: bool

    @classmethod
    def build(
        cls,
        *,
        source: str | None = None,
        cache_dir: str | Path | None = None,
        registry: str | None = None,
    ) -> Settings:
        env = os.environ
        src = source or env.get(ENV_MNIST) or None
        cache = Path(cache_dir or env.get(ENV_CACHE) or default_cache_dir()).expanduser()
        reg = registry or env.get(ENV_REGISTRY) or ""
        is_default = not reg
        if is_default:
            reg = str(default_registry_dir())
        return cls(source=src, cache_dir=cache, registry=reg, registry_is_default=is_default)
