"""Settings files: where a location comes from (explicit > environment > project file >
user file > default), how files are found and read, and what a bad one says."""

from __future__ import annotations

from pathlib import Path

import pytest

from softmax_core import settings
from softmax_core.errors import InvalidInputError
from softmax_core.requests import Data, Location


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """A user file (named by $SOFTMAX_PIPE_CONFIG), a project folder with its file, and a
    folder two levels under it, which is the working folder."""
    user = tmp_path / "home" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")  # named by the variable, so it must exist: empty sets nothing
    project = tmp_path / "project"
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.setenv(settings.ENV_CONFIG, str(user))
    monkeypatch.chdir(deep)
    return user, project / settings.PROJECT_FILE, deep


def test_the_order_explicit_environment_project_user_default(
    files: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    user, project, _ = files
    assert settings.resolve("registry") == settings.Resolved(None, "default")
    user.write_text('registry = "s3://team/user"\n')
    assert settings.resolve("registry") == settings.Resolved("s3://team/user", str(user))
    project.write_text('registry = "s3://team/project"\n')
    assert settings.resolve("registry").value == "s3://team/project"  # found walking up
    monkeypatch.setenv(settings.ENV_REGISTRY, "s3://team/env")
    assert settings.resolve("registry") == settings.Resolved(
        "s3://team/env", "$SOFTMAX_PIPE_REGISTRY"
    )
    assert settings.resolve("registry", "s3://x/y") == settings.Resolved("s3://x/y", "explicit")
    monkeypatch.setenv(settings.ENV_REGISTRY, "")  # empty counts as unset, as in the shell
    assert settings.resolve("registry").value == "s3://team/project"


def test_keys_a_file_does_not_set_come_from_the_next(files: tuple[Path, Path, Path]) -> None:
    user, project, _ = files
    user.write_text('registry = "s3://u/r"\nmnist = "download"\ncache = "~/c"\n')
    project.write_text('mnist = "data/mnist"\n')
    built = settings.Settings.build()
    assert built.registry == "s3://u/r" and not built.registry_is_default
    assert built.source == str(project.parent / "data" / "mnist")  # relative to its file
    assert built.cache_dir == Path("~/c").expanduser()
    assert Location().resolved().registry == "s3://u/r"  # the requests resolve through it
    assert Data().resolved().source == built.source


def test_relative_paths_are_the_files_and_uris_keywords_stay(tmp_path: Path) -> None:
    f = tmp_path / "softmax-pipe.toml"
    f.write_text(
        'registry = "reg"\nmnist = "npz:m/mnist.npz"\ncache = "/abs/cache"\n'
        'endpoint-url = "http://127.0.0.1:9000"\n'
    )
    read = settings.SettingsFile.read(f)
    assert read.values == {
        "registry": str(tmp_path / "reg"),
        "mnist": "npz:" + str(tmp_path / "m" / "mnist.npz"),
        "cache": "/abs/cache",
        "endpoint-url": "http://127.0.0.1:9000",
    }
    f.write_text('registry = "file:///srv/reg"\nmnist = "keras"\n')
    assert settings.SettingsFile.read(f).values == {"registry": "file:///srv/reg", "mnist": "keras"}


def test_command_tables_merge_project_over_user(files: tuple[Path, Path, Path]) -> None:
    user, project, _ = files
    user.write_text('[run]\ndata-share = 0.2\nepochs = 6\n["dataset add"]\nname = "mine"\n')
    project.write_text("[run]\nepochs = 8\n[score]\nprobs = true\n")
    tables = settings.command_defaults()
    assert {name: table.options for name, table in tables.items()} == {
        "run": {"data-share": 0.2, "epochs": 8},
        "dataset add": {"name": "mine"},
        "score": {"probs": True},
    }
    # where each came from, so that a message can name the file
    assert tables["run"].files == {"data-share": user, "epochs": project}
    assert tables["run"].path == project and tables["dataset add"].path == user
    assert tables["score"].files == {"probs": project}


def test_a_user_file_named_by_the_variable_must_exist(
    files: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """$SOFTMAX_PIPE_CONFIG names a file on purpose: one that is not there is an error naming
    it (exit 2), never silently no settings; unset or empty, the default file is optional."""
    missing = tmp_path / "nowhere" / "config.toml"
    monkeypatch.setenv(settings.ENV_CONFIG, str(missing))
    with pytest.raises(InvalidInputError, match="does not exist") as info:
        settings.resolve("registry")
    assert f"settings file {missing} does not exist" in str(info.value)
    assert settings.ENV_CONFIG in str(info.value) and info.value.exit_code == 2
    monkeypatch.setenv(settings.ENV_CONFIG, str(tmp_path))  # a folder
    with pytest.raises(InvalidInputError, match=f"settings file {tmp_path} is not a file"):
        settings.command_defaults()
    for unset in ("", "  "):
        monkeypatch.setenv(settings.ENV_CONFIG, unset)  # as in the shell: unset
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config-here"))
        assert settings.resolve("registry") == settings.Resolved(None, "default")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("registry = \n", "is not valid TOML"),
        ("regsitry = 'x'\n", "regsitry = 'x' is not a setting; expected one of registry"),
        ("registry = 3\n", "registry = 3 is not a setting"),
        ("registry = ''\n", "registry = '' is not a setting"),
        ("[dataset.add]\nname = 'x'\n", 'is not a setting.*\\["registry list"\\] for a subcommand'),
    ],
)
def test_a_bad_file_is_refused_naming_it(
    files: tuple[Path, Path, Path], text: str, match: str
) -> None:
    user, _, _ = files
    user.write_bytes(text.encode())
    with pytest.raises(InvalidInputError, match=match) as info:
        settings.resolve("registry")
    assert str(user) in str(info.value) and info.value.exit_code == 2


def test_the_user_file_defaults_to_the_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(settings.ENV_CONFIG, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert settings.default_user_config() == tmp_path / "xdg" / "softmax-pipe" / "config.toml"
    settings.default_user_config().parent.mkdir(parents=True)
    settings.default_user_config().write_text('mnist = "download"\n')
    assert settings.resolve("mnist").value == "download"
