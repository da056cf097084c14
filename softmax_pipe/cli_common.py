"""What every CLI module shares: the error boundary, stderr console and common options.

Imports only typer (and rich through it) at module level, so ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeGuard

import typer
from typer.core import TyperGroup

from softmax_core import settings
from softmax_core.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    Interrupted,
    SoftmaxPipeError,
)
from softmax_core.escaping import printable

if TYPE_CHECKING:
    from softmax_core.requests import Hyper, Location

SourceOpt = Annotated[
    str | None,
    typer.Option(
        "--source",
        help="MNIST source: 'keras', 'download', a folder of IDX files, or an .npz file. "
        "Default: $SOFTMAX_PIPE_MNIST, else mnist in a settings file, else the MNIST "
        "already cached, else keras's copy, keras, or the download.",
        envvar=settings.ENV_MNIST,
        show_envvar=True,
        rich_help_panel="Data",
    ),
]
CacheOpt = Annotated[
    str | None,
    typer.Option(
        "--cache-dir",
        help="Cache folder for datasets and pulled models. Default: the user's cache dir.",
        envvar=settings.ENV_CACHE,
        show_envvar=True,
        rich_help_panel="Data",
    ),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry URI: a folder, file:///path or s3://bucket/prefix. "
        "Default: registry in a settings file, else a folder in the user's data dir.",
        envvar=settings.ENV_REGISTRY,
        show_envvar=True,
        rich_help_panel="Registry",
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="S3 endpoint (SeaweedFS, MinIO, Ceph...). Default: boto3's own ($AWS_ENDPOINT_URL, profile).",
        envvar="AWS_ENDPOINT_URL",
        show_envvar=True,
        rich_help_panel="Registry",
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document for machines.", rich_help_panel="Output"),
]

# Training hyperparameters, shared by `train` and `run` (checked by softmax_core.requests).
EpochsOpt = Annotated[
    int, typer.Option(help="Passes over the training set.", rich_help_panel="Training")
]
SeedOpt = Annotated[
    int,
    typer.Option(help="Seed for shuffling: same seed, same weights.", rich_help_panel="Training"),
]
FeaturesOpt = Annotated[
    str,
    typer.Option(
        help="What the model sees: pixels (scaled), deskew (moment-deskewed pixels) or hog "
        "(oriented-gradient histograms of the deskewed digit: 392 features).",
        envvar=settings.ENV_FEATURES,
        rich_help_panel="Training",
    ),
]
LearningRateOpt = Annotated[
    float, typer.Option(help="Initial SGD learning rate.", rich_help_panel="Training")
]
BatchSizeOpt = Annotated[int, typer.Option(help="Minibatch size.", rich_help_panel="Training")]
L2Opt = Annotated[
    float, typer.Option(help="L2 penalty on the weights.", rich_help_panel="Training")
]
LimitOpt = Annotated[
    int | None,
    typer.Option(help="Train on the first N images only.", rich_help_panel="Training"),
]


def hyper(
    *,
    features: str,
    epochs: int,
    seed: int,
    learning_rate: float,
    batch_size: int,
    l2: float,
    limit: int | None,
    warm_start: bool = False,
) -> Hyper:
    """The training hyperparameters from the options `train` and `run` share (checked by
    :class:`~softmax_core.requests.Hyper`: a bad value is one line, exit 2)."""
    from softmax_core.requests import Hyper

    return Hyper(
        features=features,  # type: ignore[arg-type]  # a choice Hyper checks
        epochs=epochs,
        seed=seed,
        learning_rate=learning_rate,
        batch_size=batch_size,
        l2=l2,
        limit=limit,
        warm_start=warm_start,
    )


def location(
    registry: str | None, endpoint_url: str | None, cache_dir: str | None, *, say: bool = True
) -> Location:
    """The registry and cache a command's options name, resolved from the environment, the
    settings files and the defaults; with ``say``, a line on stderr when it is the default
    local registry."""
    from softmax_core.requests import Location

    where = Location(registry=registry, endpoint_url=endpoint_url, cache_dir=cache_dir)
    resolved = where.resolved()
    if say and settings.resolve("registry", registry).is_default:
        err(
            f"using the default local registry at {resolved.registry} (set --registry, "
            f"{settings.ENV_REGISTRY} or registry in {settings.default_user_config()})"
        )
    return resolved


def err(message: str, *, style: str | None = None) -> None:
    """One line on stderr: styled by rich on a terminal (markup off: paths may contain
    brackets), plain text otherwise (without importing rich: most runs are scripted).

    The line goes through :func:`softmax_core.escaping.printable`: a file name, path or
    message quoting one cannot move the cursor, retitle the terminal or start a line."""
    message = printable(message)
    if not sys.stderr.isatty():
        print(message, file=sys.stderr, flush=True)
        return
    from rich.console import Console

    Console(stderr=True, markup=False, highlight=False, soft_wrap=True).print(message, style=style)


class _StderrLines(logging.Handler):
    """Each record as one :func:`err` line (its message only)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            err(record.getMessage())
        except Exception:  # a warning must never break the command
            self.handleError(record)


@contextlib.contextmanager
def warnings_on_stderr(*loggers: str) -> Iterator[None]:
    """While the block runs, the warnings of ``loggers`` reach stderr as one line each,
    whatever Prefect's logging set-up does to the root logger (``run`` keeps Prefect's
    console quiet, and with it the root logger's warnings). ``registry`` commands need
    none of this: without Prefect, Python prints a warning as one line already."""
    handler = _StderrLines(logging.WARNING)
    attached = [logging.getLogger(name) for name in loggers]
    for logger in attached:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in attached:
            logger.removeHandler(handler)


def data_reads(what: str, source: str | None) -> dict[str, Path]:
    """The files an MNIST ``source`` is read from, as ``prepare_output``'s ``reads``:
    ``{what: file}``, or one entry a file for an IDX folder (``the training data
    (train-images-idx3-ubyte.gz)``), so that no output is written over them."""
    from softmax_core.mnist.formats import source_files

    files = source_files(source)
    if len(files) == 1 and files[0] == Path(source or "").expanduser():
        return {what: files[0]}
    return {f"{what} ({f.name})": f for f in files}


def echo(line: str) -> None:
    """One line on stdout (``typer.echo``) that names a user's file, path or key:
    :func:`softmax_core.escaping.printable`, as :func:`err` does for stderr."""
    typer.echo(printable(line))


DEBUG_KEY = "softmax_pipe.debug"


@contextlib.contextmanager
def stdout_closed_early() -> Iterator[None]:
    """A reader that stops early (``| head``) ends the command quietly with exit 141, like
    a Unix tool killed by SIGPIPE; a stdout that cannot be written (``> /dev/full``) is
    one line and StorageError's exit code, as ``score``'s rows are (it raised an OSError
    out of click, a traceback for ``--help``). Context managers inside still run."""
    try:
        yield
    except BrokenPipeError:
        _stdout_to_devnull()
        _stderr_flushed()
        raise typer.Exit(code=EXIT_BROKEN_PIPE) from None
    except SystemExit as e:
        if isinstance(e.__context__, BrokenPipeError):  # rich's on_broken_pipe: exit(1)
            _stderr_flushed()
            raise typer.Exit(code=EXIT_BROKEN_PIPE) from None
        raise
    except OSError as e:
        if not (_stdout_failed() or _writing_stdout(e)):
            raise
        _stdout_to_devnull()
        from softmax_core.errors import StorageError

        err(f"error: cannot write stdout: {e.strerror or e}", style="bold red")
        raise typer.Exit(code=StorageError.exit_code) from None


def _writing_stdout(e: BaseException) -> bool:
    """True when the innermost frame that raised ``e`` was writing stdout: it holds stdout
    itself (click's ``echo``) or a rich console on it. A text too long for stdout's buffer
    fails in that write and leaves nothing for :func:`_stdout_failed` to find."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or sys.stdout is None:
        return False
    values = tb.tb_frame.f_locals.values()
    return any(v is sys.stdout or getattr(v, "file", None) is sys.stdout for v in values)


def _stdout_failed() -> bool:
    """True when stdout holds text it cannot write (pointed at devnull then, so that the
    interpreter's final flush stays quiet): the OSError just raised was stdout's."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError:
        _stdout_to_devnull()
        return True
    except ValueError:  # closed
        return False
    return False


def _stderr_flushed() -> None:
    """Flush stderr; when it cannot be written either (``2>&1 | head``: the summary's line
    was cut short), point it at devnull, so that the interpreter's final flush does not fail
    (exit 120) after the quiet exit 141."""
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stderr.fileno())
    except ValueError:  # closed
        pass


def _stdout_to_devnull() -> None:
    """Point stdout at devnull, so that the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _debug(ctx: Any) -> bool:  # click's Context, which typer vendors and does not export
    return bool(ctx.find_root().meta.get(DEBUG_KEY)) or settings.debug_enabled()


EXIT_USAGE = 2  # click's UsageError (typer.BadParameter's base): a bad option or argument


def is_usage_error(e: BaseException) -> TypeGuard[typer.TyperException]:
    """Whether ``e`` is click's ``UsageError``, which typer vendors and does not export:
    its public base is ``typer.TyperException``, and the usage errors are those with
    click's usage exit code (other click errors exit 1)."""
    return isinstance(e, typer.TyperException) and getattr(e, "exit_code", None) == EXIT_USAGE


def _traceback(debug: bool) -> None:
    """``--debug``: the traceback of the exception being handled, on stderr, before its
    one line; the exit code stays the documented one (a bare re-raise would exit 1)."""
    if debug:
        import traceback

        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()


def _usage_error(e: typer.TyperException, command_path: str) -> None:
    """Exit 2 with one line naming the help to read; a group called without a command
    (``softmax-pipe registry``) has printed its help already, and says nothing more."""
    if type(e).__name__ == "NoArgsIsHelpError":  # as typer's own rich_utils tells it
        if e.message:  # typer's rich help prints itself and leaves the message empty
            typer.echo(e.message)
        raise typer.Exit(EXIT_USAGE) from None
    ctx = getattr(e, "ctx", None)
    where = ctx.command_path if ctx is not None else command_path
    message = _from_settings_file(e) or e.format_message()
    err(f"error: {message} (see `{where} --help`)", style="bold red")
    raise typer.Exit(EXIT_USAGE) from None


SETTINGS_ORIGINS_KEY = "softmax_pipe.settings_origins"


@dataclass(frozen=True)
class FileDefaults:
    """The settings files' command tables as click's ``default_map``, and where each value
    came from: ``origins[(*command words, parameter name)]`` is (the file, the key as
    written), so that a bad value can name its file (:func:`_usage_error`)."""

    default_map: dict[str, Any] = field(default_factory=dict)
    origins: dict[tuple[str, ...], tuple[Path, str]] = field(default_factory=dict)


def file_defaults(group: Any) -> FileDefaults:
    """The settings files' command tables (:func:`softmax_core.settings.command_defaults`)
    as click's ``default_map``: each table must name a command of ``group`` as it is typed
    (``run``, ``registry list``), each key one of its long options (``data-share``,
    ``json``), which becomes the parameter's name (``data_share``, ``as_json``); a
    repeatable option takes a list or one value (``dataset = "mine"``); the tables of
    subcommands nest (``{"registry": {"list": {...}}}``). An unknown command or
    option is an InvalidInputError naming the file that holds it."""
    from softmax_core.errors import InvalidInputError

    found = FileDefaults()
    for name, table in settings.command_defaults().items():
        command, into = group, found.default_map
        for word in name.split():
            subcommands = getattr(command, "commands", None) or {}
            if word not in subcommands:
                raise InvalidInputError(
                    f"settings file {table.path}: [{name}] is not a command of softmax-pipe "
                    f"(commands: {', '.join(sorted(subcommands))})"
                )
            command = subcommands[word]
            into = into.setdefault(word, {})
        if getattr(command, "commands", None) is not None:
            raise InvalidInputError(
                f"settings file {table.path}: [{name}] is a group; name one of its commands "
                f'(["{name} {sorted(command.commands)[0]}"])'
            )
        options = {
            flag[2:]: p
            for p in command.params
            if p.param_type_name == "option"
            for flag in p.opts
            if flag.startswith("--")
        }
        for key, value in table.options.items():
            if key not in options:
                raise InvalidInputError(
                    f"settings file {table.files[key]}: [{name}] {key} is not an option of "
                    f"`softmax-pipe {name}` (options: {', '.join(sorted(options))})"
                )
            option, path = options[key], table.files[key]
            if option.multiple and not isinstance(value, list):
                value = [value]  # ``dataset = "mine"``: one of a repeatable option's values
            for one in value if option.multiple else [value]:
                expected = _toml_type_error(option, one)
                if expected is not None:
                    raise InvalidInputError(
                        f"settings file {path}: [{name}] {key}: {_toml(one)} is not {expected}"
                    )
            into[option.name] = _in_file_folder(option, path, value)
            found.origins[(*name.split(), option.name)] = (path, key)
    return found


def _toml_type_error(option: Any, value: Any) -> str | None:
    """What ``option`` takes when the TOML ``value`` is not of a type it takes, else None.
    Click converts a ``default_map`` value with ``int()`` or ``float()`` when it is not a
    string: ``epochs = 1.5`` trained one epoch, ``epochs = true`` too. A string is checked
    by click as a typed value is (``workers = "x"``, ``seed = "-1"``)."""
    if option.is_flag:
        return None if isinstance(value, bool) else "true or false"
    if isinstance(value, str):
        return None
    kind = getattr(option.type, "name", "")
    if kind in ("int", "int range"):  # click.INT, click.IntRange
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if kind in ("float", "float range"):
        fits = isinstance(value, int | float) and not isinstance(value, bool)
        return None if fits else "a number"
    return "a string (in quotes)"


def _toml(value: Any) -> str:
    """``value`` as it is written in TOML (``true``, ``1.5``, ``"x"``)."""
    import json

    number = isinstance(value, int | float) and not isinstance(value, bool)
    return repr(value) if number else json.dumps(value, default=str)


# The metavar of an option that is a local file path but is declared as a string (a Path
# drops the trailing slash that says a name is a folder: `--out m/new/`); a settings file's
# relative value of it is relative to the file's folder, as a Path option's is.
LOCAL_PATH = "PATH"

# The metavar of an option whose value is words, not a path (``--by``, ``--comment``): a
# settings file's value of it is kept as written, a leading ``~`` too.
WORDS = "TEXT"

# The environment variables of the settings files' locations: the options they set take a
# relative path in a command's table as the top-level key does (``[ingest] source``).
_LOCATION_KEYS = {variable: key for key, variable in settings.FILE_KEYS.items()}


def _in_file_folder(option: Any, path: Path, value: Any) -> Any:
    """A relative path in a command's table relative to the file's folder, as a top-level
    key's is: for the options declared as paths (``Path``: ``[train] out``) and those of the
    locations (``source``, ``cache-dir``, ``registry``). A leading ``~`` is the home folder
    in every string (``[score] output = "~/x.csv"``: :func:`settings.relative_to`) but
    words (:data:`WORDS`: ``--by``, ``--comment``); URIs, keywords and other values stay
    as they are."""
    if option.metavar == WORDS:  # a name or a comment: "~/see notes" is not a path
        return value
    location = _LOCATION_KEYS.get(option.envvar) if isinstance(option.envvar, str) else None
    is_path = getattr(option.type, "name", "") == "path" or option.metavar == LOCAL_PATH
    key = location or ("path" if is_path else "value")
    if option.multiple:
        return [
            settings.relative_to(path.parent, key, v) if isinstance(v, str) else v for v in value
        ]
    return settings.relative_to(path.parent, key, value) if isinstance(value, str) else value


def _where_given(ctx: Any, e: SoftmaxPipeError) -> str | None:
    """For a request's value that its check refused (``InvalidInputError.setting``): the
    error as the user gave the value. From a settings file, naming the file and the key,
    as :func:`_from_settings_file` names them for click's own checks (a location from a
    top-level key, ``registry`` or ``endpoint-url``: :func:`_location_origin`); typed,
    naming the option as typed (:func:`_as_typed`: ``--epochs 0``, not ``epochs=0``). The
    command's context is the innermost one of ``ctx``'s that the traceback holds: whether
    the value came from the file is its parameter's source (comparing values missed
    ``seed = "-1"``, which the check sees as -1, and ``nan``)."""
    setting = getattr(e, "setting", None)
    leaf = _command_context(ctx, e)
    if setting is None or leaf is None or setting[0] not in leaf.params:
        return None
    return (
        _settings_origin(leaf, setting[0], str(e))
        or _location_origin(leaf, setting, str(e))
        or _as_typed(leaf, setting[0], str(e))
    )


def _as_typed(ctx: Any, name: str, message: str) -> str | None:
    """``message`` of a request's check (``epochs=0 is invalid; …``) naming the option as
    the user typed it on the command line (``--epochs 0 is invalid; …``); else None."""
    source = ctx.get_parameter_source(name)
    prefix = f"{name}="
    if source is None or source.name != "COMMANDLINE" or not message.startswith(prefix):
        return None
    param = next((p for p in ctx.command.params if p.name == name), None)
    opts = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
    return f"{opts[0]} {message[len(prefix) :]}" if opts else None


def _location_origin(ctx: Any, setting: tuple[str, object], message: str) -> str | None:
    """``message`` naming the settings file and top-level key (``endpoint-url``,
    ``registry``) that gave the location the command ``ctx`` was not given, when the
    refused value is that file's (:func:`settings.resolve`); else None."""
    name, value = setting
    if ctx.params.get(name) is not None:  # typed, from the environment or a command table
        return None
    option = next((p for p in ctx.command.params if p.name == name), None)
    envvar = getattr(option, "envvar", None)
    key = _LOCATION_KEYS.get(envvar) if isinstance(envvar, str) else None
    if key is None:
        return None
    found = settings.resolve(key)
    if found.file is None or found.value != value:
        return None
    return f"settings file {found.file}: {key}: {message}"


def _command_context(root: Any, e: BaseException) -> Any:
    """The innermost click context under ``root`` that a frame of ``e``'s traceback holds
    as ``ctx`` (click's own ``Command.invoke``): the command that ran, with its
    parameters' sources, though it has been closed since."""
    found, tb = None, e.__traceback__
    while tb is not None:
        ctx: Any = tb.tb_frame.f_locals.get("ctx")
        if ctx is not root and callable(getattr(ctx, "find_root", None)):
            found = ctx if ctx.find_root() is root else found
        tb = tb.tb_next
    return found


def _settings_origin(ctx: Any, name: str, message: str) -> str | None:
    """``message`` naming the settings file and key that gave the parameter ``name`` of the
    command ``ctx``, when a file gave it (click's ``default_map``); else None."""
    source = ctx.get_parameter_source(name)
    if source is None or source.name != "DEFAULT_MAP":  # click's ParameterSource, vendored
        return None
    words, at = [], ctx
    while at.parent is not None:
        words.append(at.info_name)
        at = at.parent
    origin = at.meta.get(SETTINGS_ORIGINS_KEY, {}).get((*reversed(words), name))
    if origin is None:
        return None
    return _settings_line(origin, words[::-1], message)


def _settings_line(origin: tuple[Path, str], words: list[str], message: str) -> str:
    """One error line for a settings file's value: ``origin`` is (the file, the key as
    written), ``words`` the command's words (its table)."""
    path, key = origin
    return f"settings file {path}: [{' '.join(words)}] {key}: {message}"


def _from_settings_file(e: typer.TyperException) -> str | None:
    """For a bad value that came from a settings file (click's ``default_map``) rather than
    the command line: the line that names the file and the key, instead of click's
    ``Invalid value for '--workers'``, which reads as if it had been typed."""
    ctx, param = getattr(e, "ctx", None), getattr(e, "param", None)
    if ctx is None or param is None or not param.name:
        return None
    return _settings_origin(ctx, param.name, getattr(e, "message", None) or e.format_message())


def flowed_help(app: typer.Typer) -> None:
    """Each command's help flowed as a terminal shows it: a docstring's line breaks inside
    a paragraph are the source's wrapping, joined here (typer's rich mode keeps them, which
    broke the help mid-sentence: "... how many it" / "rejected;" / "the expected ...").
    Its line in the group's command list is the first paragraph. A ``short_help`` given at
    registration stays. Sub-apps' commands too."""
    import inspect

    for info in app.registered_commands:
        text = info.help or inspect.getdoc(info.callback) or ""
        info.help = "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))
        if info.short_help is None and info.help:
            info.short_help = info.help.split("\n\n")[0]
    for group in app.registered_groups:
        if group.typer_instance is not None:
            flowed_help(group.typer_instance)


class ErrorBoundary(TyperGroup):
    """The one place errors become exit codes, for every command (and under CliRunner).

    - a :class:`SoftmaxPipeError`: ``error: <message>`` on stderr, its exit code;
    - a usage error (bad option value, missing argument): one line, exit 2;
    - Ctrl-C or SIGTERM: ``interrupted``, exit 130;
    - anything else (a bug): one line naming it, ``run with --debug for the traceback``,
      exit 70. ``--debug`` or ``SOFTMAX_PIPE_DEBUG=1`` prints the traceback before the
      line, which then leaves the hint out; the exit code is the same.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        """The root's own parsing (``softmax-pipe --bogus``): its usage errors are one line
        too, instead of typer's boxed panel (raised here, before :meth:`invoke`). The
        settings files' command tables become click's ``default_map`` here, checked
        against the commands (an unknown command or option is an error, exit 2)."""
        try:
            files = file_defaults(self)
        except SoftmaxPipeError as e:
            err(f"error: {e}", style="bold red")
            raise typer.Exit(e.exit_code) from None
        kwargs.setdefault("default_map", files.default_map)
        try:
            with stdout_closed_early():  # ``softmax-pipe --help | head``
                ctx = super().make_context(*args, **kwargs)
                ctx.meta[SETTINGS_ORIGINS_KEY] = files.origins
                return ctx
        except typer.TyperException as e:
            if not is_usage_error(e):
                raise
            _traceback(settings.debug_enabled())
            _usage_error(e, kwargs.get("info_name") or (args[0] if args else "softmax-pipe"))
            raise AssertionError("unreachable") from None  # _usage_error always raises

    def invoke(self, ctx: Any) -> Any:
        try:
            with stdout_closed_early():
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except SoftmaxPipeError as e:
            _traceback(_debug(ctx))
            _stdout_failed()  # a full disk's unwritten text: no "Exception ignored" after
            err(f"error: {_where_given(ctx, e) or e}", style="bold red")
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt as e:
            err(f"interrupted {e.done}" if isinstance(e, Interrupted) else "interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as e:
            debug = _debug(ctx)
            _traceback(debug)
            if is_usage_error(e):
                _usage_error(e, ctx.command_path)
            hint = "" if debug else "; run with --debug for the traceback"  # printed above
            err(f"error: unexpected {type(e).__name__}: {e} (a bug{hint})", style="bold red")
            raise typer.Exit(EXIT_INTERNAL) from None


class ImageProgress:
    """A rich progress bar over images on stderr, only when stderr is a terminal.

    ``total``: called once the bar starts (counting can take a walk of the folder);
    ``advance(n)`` or ``update(done, total)`` moves it.
    """

    def __init__(self, label: str, total: Callable[[], int] | None = None) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = self.console.is_terminal
        self.label = label
        self.total = total

    def __enter__(self) -> ImageProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=self.console,
                auto_refresh=False,  # no refresh thread: worker processes can be forked
            )
            total = self.total() if self.total is not None else None
            self.task = self.progress.add_task(self.label, total=total)
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)
        self.progress.refresh()

    def update(self, done: int, total: int) -> None:
        if self.enabled:
            self.progress.update(self.task, completed=done, total=total)
            self.progress.refresh()
