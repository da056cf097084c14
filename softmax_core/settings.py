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
- ``SOFTMAX_PIPE_CONFIG``: the user's settings file (default below); one it names must
  exist (an InvalidInputError naming it, exit 2, not silently no settings).
- ``SOFTMAX_PIPE_WEBHOOK_URL``: one or more URLs (spaces or commas between them) that
  registry events are posted to, signed with ``SOFTMAX_PIPE_WEBHOOK_SECRET``
  (:func:`webhook_settings`).
- ``SOFTMAX_PIPE_STORE_CHECK``: ``0`` skips the registry check an S3 registry gets before
  its first write (``registry.check``; for test suites and stores proven another way).

Settings files, in the manner of git's and aws-cli's (TOML, read with ``tomllib``):

- the user's, ``~/.config/softmax-pipe/config.toml`` (``platformdirs``' user config dir;
  ``$SOFTMAX_PIPE_CONFIG`` names another);
- a project's, ``softmax-pipe.toml`` in the working folder or the nearest folder above it,
  which overrides the user's, key by key.

Top-level keys are the locations every command shares (:data:`FILE_KEYS`: ``registry``,
``mnist``, ``cache``, ``endpoint-url``); a relative path there is relative to the file's
folder. A table named after a command, as it is typed after ``softmax-pipe``, holds that
command's option defaults by long option name (``[run]`` ``data-share = 0.2``;
``["dataset add"]`` ``name = "mine"`` for a subcommand).
:func:`resolve` is the one place a location is looked up: explicit (an option) > the
environment > the project file > the user file > the default; the requests' resolution
(``softmax_core.requests``) goes through it. :func:`command_defaults` gives the CLI the
tables, which it hands to click as its ``default_map``: click's own order is the same
(an option > its environment variable > the files > the declared default). Another
setting is one more entry of :data:`FILE_KEYS` (a location) or an option of a command.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ENV_MNIST = "SOFTMAX_PIPE_MNIST"
ENV_CACHE = "SOFTMAX_PIPE_CACHE"
ENV_FEATURES = "SOFTMAX_PIPE_FEATURES"
ENV_REGISTRY = "SOFTMAX_PIPE_REGISTRY"
ENV_MODEL = "SOFTMAX_PIPE_MODEL"
ENV_DASK_ADDRESS = "SOFTMAX_PIPE_DASK_ADDRESS"
ENV_PROJECT_DIR = "SOFTMAX_PIPE_PROJECT_DIR"
ENV_DEBUG = "SOFTMAX_PIPE_DEBUG"
ENV_CONFIG = "SOFTMAX_PIPE_CONFIG"
ENV_WEBHOOK_URL = "SOFTMAX_PIPE_WEBHOOK_URL"
ENV_WEBHOOK_SECRET = "SOFTMAX_PIPE_WEBHOOK_SECRET"
ENV_STORE_CHECK = "SOFTMAX_PIPE_STORE_CHECK"
ENV_ENDPOINT = "AWS_ENDPOINT_URL"  # boto3's own

# --- settings files ----------------------------------------------------------------------------
PROJECT_FILE = "softmax-pipe.toml"  # in the working folder or one above it
USER_FILE = "config.toml"  # in the user's config folder
# The top-level keys of a settings file: the locations every command shares, and the
# environment variable that overrides each.
FILE_KEYS: Final = {
    "registry": ENV_REGISTRY,
    "mnist": ENV_MNIST,
    "cache": ENV_CACHE,
    "endpoint-url": ENV_ENDPOINT,
}
# Keys whose relative paths are relative to the file's folder (not URIs or keywords).
_PATH_KEYS = ("registry", "mnist", "cache")
_KEYWORDS = ("keras", "download")

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
# Confidence calibration (softmax_core.calibration, softmax_core.train): the temperature is
# fitted on the last CALIBRATION_IMAGES of MNIST's training split, scored by a model trained
# the same way without them; the model itself learns from every image (holding the slice
# out of the shipped model instead cost 0.06-0.10 points of MNIST test over four seeds).
# At most a fifth of a split; 0: no temperature (T = 1).
CALIBRATION_IMAGES = 5000
# How many times each training image of a user's dataset counts (repeated in every epoch:
# oversampling). None: as many times as make the users' images DATA_SHARE of the MNIST
# images trained on, at least once (x37 for 20 labelled images a class, x5 for 1,500).
# Measured on few labels (20 a class and fewer) and on 1,500: benchmarks/own_data.py
# (0.2 reads 1-3 points more of a new script and costs MNIST up to 0.1 point more).
DATA_WEIGHT: Final[int | None] = None
DATA_SHARE = 0.1
# How: "jitter" (repeat the image, each repeat after the first a slightly turned, slanted,
# scaled and moved copy: softmax_core.augment), "oversample" (repeat it as it is) or
# "loss" (one copy, its loss weighted); measured side by side in benchmarks/own_data.py.
DATA_WEIGHTING: Final = "jitter"
DATA_WEIGHTINGS = ("jitter", "oversample", "loss")
# --- not a digit (the model's class 10; softmax_core.negatives) ---------------------------------
# Train an 11-class model: the digits and "not a digit", learned from NEGATIVES_SHARE x the
# MNIST images trained on of seeded generated non-digits (softmax_core.negatives, drawn with
# seed 2 x --seed) plus the users' not-a-digit/ folders. False (--no-reject): 10 classes.
REJECT = True
NEGATIVES_SHARE = 0.1
# ... and, with them, this share of training digits again, drawn on pages with a page's
# leftovers (a frame's corner, a neighbour's edge, uneven light: softmax_core.clutter), so
# that such marks do not make a real digit "not a digit".
CLUTTERED_SHARE = 0.1
# The digits' columns learn from this share of cluttered digits too, beside MNIST (the
# 10-class model, --no-reject, the same): page leftovers, cut strokes and the smaller,
# off-centre digits they make are then read as the digits they are. Forms (4 kinds,
# benchmarks/pages.py, seeds 23, 25, 26): 97.2/96.8/96.3% -> 97.7/97.7/97.4% with 10
# classes, 96.1/95.6/95.0% -> 96.8/96.9/96.3% with 11 (rejected form digits 0.7-3.3% ->
# 1.0-2.3% a kind); MNIST test 98.93% -> 98.92% (11 classes), 98.99% (10); unseen
# non-digits rejected (benchmarks/unknown.py, seeds 24, 25, 26) 76.2/74.3/75.7% ->
# 75.0/74.7/73.6%. 0.1 of the older leftovers alone lifted forms by 0.1 point.
CLUTTERED_DIGITS_SHARE = 0.3
# Every class also weighs the pairwise products of the features' coordinates along the
# digits' TERMS leading directions (softmax_core.quadratic: 465 terms for 30): curved
# boundaries. The column "not a digit" linear alone rejected 59% of the unseen non-digits
# of benchmarks/unknown.py and 0.29% of MNIST test at REJECT_THRESHOLD; with them 76% and
# 0.10%. The digits' columns with them too: MNIST test 98.99% -> 99.22% (10 classes).
TERMS = 30
MAX_TERMS = 64  # 2,080 terms a minibatch row (a stored training row grows by 64 floats)
# The held-out negatives the gate measures rejection on: a fixed seed that training never
# draws with (training's seeds are even), and how many (1,000: a share near 78% known to
# +-2.6 points, 95%, against a floor of 50%; each costs about 1 ms the first time).
HELDOUT_NEGATIVES_SEED = 24_001
HELDOUT_NEGATIVES = 1_000
# The dataset a labelled inbox is synced into (scheduled retraining, ``run --inbox``).
INBOX_DATASET = "inbox"

# --- the gate --------------------------------------------------------------------------------
MIN_ACCURACY = 0.95
ALPHA = 0.05
# Non-inferiority: a challenger may be this much less accurate than the champion (0.5
# points); on MNIST and on a user's domain it is refused when shown worse than that by a
# one-sided test at ALPHA (softmax_core.gate says why the burden is the champion's).
MARGIN = 0.005
# A dataset's floor applies to holdouts on which an accuracy right at the floor is known to
# +-5 points (95% Wilson interval): 141 images at DATASET_MIN_ACCURACY (gate.floor_min_images).
FLOOR_HALF_WIDTH = 0.05
# The floor on each dataset's holdout, applied once the holdout is large enough for it to
# mean something (FLOOR_HALF_WIDTH). Lower than MNIST's: a user's domain is harder; high
# enough to refuse a model that is not fit for that domain (an MNIST-only model gets
# 60-80% on printed or scanned digits; trained on them it gets 97%+, benchmarks/own_data.py).
DATASET_MIN_ACCURACY = 0.90
# The reject option of an 11-class model (a 10-class one never rejects): the highest MNIST
# test share it may reject (rejects are errors there too), and the lowest share of the
# held-out generated negatives it must reject.
MAX_REJECT_RATE = 0.01
# The default model rejects about 91% of them at REJECT_THRESHOLD (and 0.13% of MNIST
# test), fewer once trained with 200 labelled digits of another script (README's loop): a
# floor under both that a model which lost the class "not a digit" falls through.
MIN_NEGATIVES_REJECTED = 0.5
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
# A local registry's lock (held for one compare-and-swap, a few milliseconds): a command
# that waits for it says so after REGISTRY_LOCK_SAY seconds, and gives up after
# REGISTRY_LOCK_WAIT (a holder that long is stuck, or a process that is stopped).
REGISTRY_LOCK_SAY = 1.0
REGISTRY_LOCK_WAIT = 30.0

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
# Pillow's own refusal in Image.open, whatever --max-pixels says: softmax_core.images sets
# PIL.Image.MAX_IMAGE_PIXELS to half of it (Pillow refuses twice that; its default)
PIXEL_CEILING = 2 * 89_478_485  # 178,956,970
# `dataset add` hashes whole files: a larger one is refused before it is read (16-bit RGBA
# at MAX_PIXELS is 128 MiB uncompressed).
MAX_IMAGE_BYTES = 256 * 1024 * 1024
# A dataset version's arrays (softmax_core.labelled: per image 784 bytes of pixels, 1 of
# label, 256 of sha256, 4 a character of its path) hold at most this much: about 230,000
# images, nearly four times MNIST's 60,000, where users' datasets hold dozens to
# thousands. A bigger `dataset add` is refused; a blob that declares more is refused
# before it is read (its writer cannot make a puller inflate or allocate more:
# softmax_core.npzread).
MAX_DATASET_BYTES = 256 * 1024 * 1024
SHARD_SIZE = 4096
SCORE_FORMATS = ("csv", "jsonl")
# A row is status=rejected when the model's (calibrated) "not a digit" probability is its
# largest and at least REJECT_THRESHOLD. Measured with the default model on the files
# benchmarks/unknown.py makes (its second table: the thresholds on the same probabilities),
# threshold: MNIST test accuracy (rejects are errors) / MNIST rejected / held-out generated
# non-digits rejected / form digits rejected / unseen non-digits rejected (tests/nondigits.py):
#   0.5: 99.21% / 0.16% / 93.2% / 1.0% / 80.5%     0.6: 99.24% / 0.13% / 91.4% / 0.6% / 77.8%
#   0.7: 99.24% / 0.12% / 88.6% / 0.6% / 73.1%     0.8: 99.26% / 0.09% / 84.5% / 0.4% / 68.2%
#   0.9: 99.30% / 0.02% / 74.9% / 0.4% / 58.3%
# 0.6 rejects about 90% of the generated non-digits, as 0.7 did before the digits' columns
# weighed the second-order terms (their temperature rose from 1.35 to 2.05, so the same
# logits give a lower probability), and keeps MNIST test above 98.8% and form digits above
# 97% kept, each with room.
REJECT_THRESHOLD = 0.6
SCORE_FORMAT: Final = "csv"

# --- monitoring (softmax_core.monitoring) ----------------------------------------------------
# Every scoring run writes a profile beside its output (<output> + PROFILE_SUFFIX) and, for
# a registry model, under monitoring/<name>/ (registry.monitoring).
PROFILE = True  # `score --profile/--no-profile`
PROFILE_SUFFIX = ".profile.json"
# The bins of the top-probability histogram: fine near 1, where a good model's mass is.
PROFILE_CONFIDENCE_EDGES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)
# Drift is flagged when one of the three tests is below DRIFT_ALPHA / 3 (Bonferroni): a
# run like the model's test set is flagged at most 1% of the time.
DRIFT_ALPHA = 0.01

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


def default_user_config() -> Path:
    """The user's settings file (``~/.config/softmax-pipe/config.toml`` on Linux)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_NAME, appauthor=False)) / USER_FILE


@dataclass(frozen=True)
class SettingsFile:
    """One parsed settings file: its top-level locations and its command tables."""

    path: Path
    values: dict[str, str] = field(default_factory=dict)
    commands: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> SettingsFile:
        """Parse ``path``; a malformed file, an unknown key or a value of the wrong type is an
        InvalidInputError naming the file (exit 2), as git refuses a bad config line."""
        import tomllib

        from softmax_core.errors import InvalidInputError

        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise InvalidInputError(f"settings file {path} is not valid TOML: {e}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInputError(f"cannot read the settings file {path}: {e}") from None
        values: dict[str, str] = {}
        commands: dict[str, Any] = {}
        for key, value in doc.items():
            if isinstance(value, dict) and all(not isinstance(v, dict) for v in value.values()):
                commands[" ".join(key.split())] = value
            elif key in FILE_KEYS and isinstance(value, str) and value.strip():
                values[key] = relative_to(path.parent, key, value.strip())
            else:
                known = ", ".join(FILE_KEYS)
                raise InvalidInputError(
                    f"settings file {path}: {key} = {value!r} is not a setting; expected one "
                    f"of {known} (a non-empty string), or a [command] table of its options "
                    '(["registry list"] for a subcommand)'
                )
        return cls(path=path, values=values, commands=commands)


def relative_to(folder: Path, key: str, value: str) -> str:
    """A value in a settings file as a shell would have given it: a leading ``~`` is the
    home folder (``~/x.csv``, ``~bob/x``), whatever the key; a path is relative to the
    file's ``folder`` when ``key`` is a top-level key (:data:`FILE_KEYS`) or ``path``, a
    command option declared as a path. URIs and keywords stay as they are; the values of
    other keys (``value`` for any other option: those that also take an ``s3://`` URI or
    ``-``) are as typed otherwise: relative to the working folder."""
    if "://" in value or value in ("", *_KEYWORDS):
        return value
    if key not in (*_PATH_KEYS, "path"):
        return os.path.expanduser(value)  # a trailing '/' stays: it names a folder
    prefix = ""
    if key == "mnist" and value.startswith(("idx:", "npz:")):
        prefix, value = value[:4], value[4:]
    path = Path(value).expanduser()
    return prefix + str(path if path.is_absolute() else folder / path)


def settings_files(
    env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> tuple[SettingsFile, ...]:
    """The settings files that apply here, the project's first (it wins), then the user's."""
    env = os.environ if env is None else env
    found: list[Path] = []
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            found.append(folder / PROJECT_FILE)
            break
    named = env.get(ENV_CONFIG, "").strip()
    user = Path(named).expanduser() if named else default_user_config()
    if named and not user.is_file():  # asked for by name: never silently left out
        from softmax_core.errors import InvalidInputError

        what = "is not a file" if user.exists() else "does not exist"
        raise InvalidInputError(
            f"settings file {user} {what} (${ENV_CONFIG} names it); create it, or unset "
            f"{ENV_CONFIG} to read {default_user_config()}"
        )
    if user.is_file() and user.resolve() not in (f.resolve() for f in found):
        found.append(user)
    return tuple(SettingsFile.read(p) for p in found)


@dataclass(frozen=True)
class Resolved:
    """A location's value and where it came from (``explicit``, ``$VAR``, a file's path,
    or ``default`` when nothing set it: then ``value`` is None)."""

    value: str | None
    origin: str

    @property
    def is_default(self) -> bool:
        return self.origin == "default"

    @property
    def file(self) -> Path | None:
        """The settings file the value came from, else None."""
        if self.origin in ("explicit", "default") or self.origin.startswith("$"):
            return None
        return Path(self.origin)


def resolve(
    key: str,
    explicit: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Resolved:
    """The value of the location ``key`` (one of :data:`FILE_KEYS`): ``explicit`` > its
    environment variable > the project's settings file > the user's > None (the caller's
    default). Empty strings count as unset, as in the shell."""
    env = os.environ if env is None else env
    if explicit is not None and str(explicit).strip():
        return Resolved(str(explicit), "explicit")
    variable = FILE_KEYS[key]
    if env.get(variable, "").strip():
        return Resolved(env[variable], f"${variable}")
    for file in settings_files(env, cwd):
        if key in file.values:
            return Resolved(file.values[key], str(file.path))
    return Resolved(None, "default")


@dataclass(frozen=True)
class CommandTable:
    """One command's table in the settings files: ``options`` (long option name -> value),
    the project's over the user's, option by option; ``files``, the file each option came
    from; ``path``, the file that holds the table (the project's when both do), so that a
    message about the table or one of its options can name its file."""

    path: Path
    options: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def command_defaults(
    env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> dict[str, CommandTable]:
    """The files' command tables by command (``run``, ``registry list``), merged: the
    project's over the user's, option by option (keys as written: long option names; the
    CLI maps them to its parameters)."""
    merged: dict[str, CommandTable] = {}
    for file in reversed(settings_files(env, cwd)):  # the user's first, the project's over it
        for command, table in file.commands.items():
            before = merged.get(command) or CommandTable(file.path)
            merged[command] = CommandTable(
                path=file.path,
                options={**before.options, **table},
                files={**before.files, **dict.fromkeys(table, file.path)},
            )
    return merged


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
    """Resolved locations (:func:`resolve`: explicit > environment > project file > user
    file > default)."""

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
        src = resolve("mnist", source).value
        cache = Path(resolve("cache", cache_dir).value or default_cache_dir()).expanduser()
        reg = resolve("registry", registry)
        return cls(
            source=src,
            cache_dir=cache,
            registry=reg.value or str(default_registry_dir()),
            registry_is_default=reg.is_default,
        )
