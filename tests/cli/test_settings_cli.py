"""Settings files as a user has them, through the CLI: the registry a project names, option
defaults by command, and a bad file refused before any command runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from softmax_core import settings
from tests.cli_invoke import invoke


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder holding its settings file; the working folder is one below it."""
    root = tmp_path / "project"
    (root / "scans").mkdir(parents=True)
    monkeypatch.chdir(root / "scans")
    return root


def test_a_project_names_its_registry_and_option_defaults(
    project: Path, model_files: list[Path], tmp_path: Path
) -> None:
    (project / settings.PROJECT_FILE).write_text(
        'registry = "models"\ncache = "cache"\n["registry list"]\njson = true\n'
        '["registry publish"]\nalias = "champion"\n'
    )
    code, out, err = invoke("registry", "publish", str(model_files[0]), "--name", "digits")
    assert code == 0, err
    assert "using the default local registry" not in err
    assert (project / "models" / "models" / "digits" / "aliases" / "champion.json").is_file()
    code, out, err = invoke("registry", "list")  # JSON, from the ["registry list"] table
    assert code == 0, err
    assert [m["name"] for m in json.loads(out)] == ["digits"]
    code, _, err = invoke("registry", "list", "--registry", str(tmp_path / "other"))
    assert code == 3 and str(tmp_path / "other") in err  # an option wins over the file


def test_the_user_file_is_read_and_the_project_wins(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_files: list[Path]
) -> None:
    user = tmp_path / "user.toml"
    user.write_text(f'registry = "{tmp_path / "user-reg"}"\n["registry list"]\njson = true\n')
    monkeypatch.setenv(settings.ENV_CONFIG, str(user))
    code, _, err = invoke("registry", "publish", str(model_files[0]), "--name", "digits")
    assert code == 0, err
    assert (tmp_path / "user-reg" / "models" / "digits").is_dir()
    (project / settings.PROJECT_FILE).write_text('["registry list"]\njson = false\n')
    code, out, _ = invoke("registry", "list")
    assert code == 0 and not out.lstrip().startswith("[")  # the project's table wins
    assert "digits" in out


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[run]\nepoch = 3\n", "[run] epoch is not an option of `softmax-pipe run`"),
        ("[rnu]\nepochs = 3\n", "[rnu] is not a command of softmax-pipe"),
        ('["registry lst"]\njson = true\n', "[registry lst] is not a command"),
        ("[registry]\njson = true\n", "[registry] is a group; name one of its commands"),
        ("[registry.list]\njson = true\n", "registry = {'list': {'json': True}} is not a setting"),
        ("registry = [1]\n", "is not a setting"),
        ("[run\n", "is not valid TOML"),
    ],
)
def test_a_bad_settings_file_is_exit_2_before_anything_runs(
    project: Path, text: str, says: str
) -> None:
    (project / settings.PROJECT_FILE).write_text(text)
    code, _, err = invoke("registry", "list")
    assert code == 2, err
    assert says in err
