"""Settings files as a user has them, through the CLI: the registry a project names, option
defaults by command, and a bad file refused before any command runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
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
        ("[score]\nbogus = 0\n", "[score] bogus is not an option of `softmax-pipe score`"),
        ('["registry list"]\nbogus = 0\n', "[registry list] bogus is not an option"),
        ("[rnu]\nepochs = 3\n", "[rnu] is not a command of softmax-pipe"),
        ("[bogus]\n", "[bogus] is not a command of softmax-pipe"),
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
    assert f"error: settings file {project / settings.PROJECT_FILE}" in err  # which file
    assert len(err.splitlines()) == 1, err


def test_an_unknown_option_names_the_file_that_holds_it(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The project's and the user's tables of one command merge: the line names the file
    the bad key is in, not the one that holds the table too."""
    user = tmp_path / "user.toml"
    user.write_text('["registry list"]\nbogus = 0\n')
    monkeypatch.setenv(settings.ENV_CONFIG, str(user))
    (project / settings.PROJECT_FILE).write_text('["registry list"]\njson = true\n')
    code, _, err = invoke("registry", "list")
    assert code == 2 and err.startswith(f"error: settings file {user}: [registry list] bogus "), err


@pytest.mark.parametrize(
    ("table", "text", "args", "says"),
    [
        ("score", 'workers = "x"', ["score", "."], "[score] workers: 'x' is not a valid int"),
        ("registry check", "racers = 1", ["registry", "check"], "[registry check] racers: 1 is"),
        (
            "registry list",
            'json = "maybe"',
            ["registry", "list"],
            '[registry list] json: "maybe" is not true or false',
        ),
    ],
)
def test_a_bad_value_in_a_settings_file_names_the_file_and_key(
    project: Path, tmp_path: Path, table: str, text: str, args: list[str], says: str
) -> None:
    """Click checks a file's value as it checks a typed one: the line says where it came
    from (the file and its key), not ``Invalid value for '--workers'``, which reads as if it
    had been typed; exit 2, before the command runs."""
    path = project / settings.PROJECT_FILE
    path.write_text(f'["{table}"]\n{text}\n')
    code, _, err = invoke(*args, "--registry", tmp_path / "reg")
    assert code == 2, err
    assert err.startswith(f"error: settings file {path}: {says}"), err
    assert "Invalid value for" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "reg").exists()  # nothing ran


@pytest.mark.parametrize(
    ("table", "text", "args", "says"),
    [
        ("train", "epochs = 0", ["train"], "[train] epochs: epochs=0 is invalid"),
        ("score", "batch-size = 0", ["score", "."], "[score] batch-size: batch_size=0 is"),
    ],
)
def test_a_value_the_request_refuses_names_the_file_too(
    project: Path, tmp_path: Path, table: str, text: str, args: list[str], says: str
) -> None:
    """A value that click takes but the job's request refuses (``epochs = 0`` is an int)
    names the file and the key as well; typed on the command line, the request's line
    names the option as typed. Exit 2 either way, and nothing is written."""
    path = project / settings.PROJECT_FILE
    path.write_text(f'["{table}"]\n{text}\n')
    out = tmp_path / "out" / "m.npz"
    code, _, err = invoke(*args, "--out" if table == "train" else "-o", out)
    assert code == 2 and err.startswith(f"error: settings file {path}: {says}"), err
    assert len(err.splitlines()) == 1 and not out.exists()
    path.write_text("")
    key, value = text.split(" = ")
    code, _, err = invoke(*args, f"--{key}", value, "--out" if table == "train" else "-o", out)
    assert code == 2 and err.startswith(f"error: --{key} {value} is invalid"), err
    assert "settings file" not in err and not out.exists()


def test_a_bad_value_typed_is_still_the_command_line_s(project: Path) -> None:
    """A value typed over a good one from the file is the command line's: click's words."""
    (project / settings.PROJECT_FILE).write_text('["registry check"]\nracers = 4\n')
    code, _, err = invoke("registry", "check", "--racers", "1")
    assert code == 2 and "Invalid value for '--racers'" in err and "settings file" not in err


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_a_config_variable_naming_no_file_is_exit_2(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    """A user who set $SOFTMAX_PIPE_CONFIG meant that file: not there, it is one line naming
    it (exit 2) before any command runs, not silently no settings."""
    named = tmp_path / "nowhere.toml" if kind == "missing" else tmp_path
    monkeypatch.setenv(settings.ENV_CONFIG, str(named))
    code, out, err = invoke("registry", "list", "--registry", tmp_path / "reg")
    assert code == 2 and out == "", err
    assert err.startswith(f"error: settings file {named} "), err
    assert settings.ENV_CONFIG in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("value", ['"mine"', '["mine"]'])
def test_a_repeatable_option_takes_one_value_or_a_list(
    project: Path, tmp_path: Path, model_files: list[Path], value: str
) -> None:
    """``dataset = "mine"`` is one dataset, as ``--dataset mine`` is (click wants a list for
    a repeatable option and said "Value must be an iterable.")."""
    (project / settings.PROJECT_FILE).write_text(f"[evaluate]\ndataset = {value}\n")
    code, _, err = invoke("evaluate", model_files[0], "--registry", tmp_path / "reg", "--json")
    assert code == 3, err
    assert "no dataset named 'mine'" in err and "iterable" not in err


@pytest.mark.parametrize(
    ("table", "text", "args", "says"),
    [
        ("train", "epochs = 1.5", ["train"], "[train] epochs: 1.5 is not an integer"),
        ("train", "epochs = true", ["train"], "[train] epochs: true is not an integer"),
        ("train", "limit = 2.9", ["train"], "[train] limit: 2.9 is not an integer"),
        ("train", "l2 = false", ["train"], "[train] l2: false is not a number"),
        ("train", 'features = ["hog"]', ["train"], '[train] features: ["hog"] is not a string'),
        ("train", "json = 1", ["train"], "[train] json: 1 is not true or false"),
        ("score", "workers = 1.7", ["score", "."], "[score] workers: 1.7 is not an integer"),
        ("evaluate", "dataset = [1]", ["evaluate", "m.npz"], "[evaluate] dataset: 1 is not a"),
    ],
)
def test_a_value_of_the_wrong_toml_type_is_refused(
    project: Path, tmp_path: Path, table: str, text: str, args: list[str], says: str
) -> None:
    """Click converts a file's number or boolean with ``int()``: ``epochs = 1.5`` trained
    one epoch and ``epochs = true`` too, where ``--epochs 1.5`` is refused. A value whose
    TOML type its option does not take is refused, naming the file and the key (exit 2),
    before anything runs."""
    path = project / settings.PROJECT_FILE
    path.write_text(f"[{table}]\n{text}\n")
    out = tmp_path / "out" / "m.npz"
    code, _, err = invoke(*args, "--out" if table == "train" else "-o", out)
    assert code == 2 and err.startswith(f"error: settings file {path}: {says}"), err
    assert len(err.splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('seed = "-1"', "[train] seed: seed=-1 is invalid"),
        ('learning-rate = "nan"', "[train] learning-rate: learning_rate=nan is invalid"),
        ('features = "pixel"', "[train] features: features='pixel' is invalid"),
    ],
)
def test_a_string_the_request_refuses_names_the_file_too(
    project: Path, tmp_path: Path, text: str, says: str
) -> None:
    """A string click converts (``seed = "-1"`` is -1; ``"nan"`` a float that equals no
    float) and the request then refuses is named with its file and key as well (the line
    named neither: the value in the file was not the one refused)."""
    path = project / settings.PROJECT_FILE
    path.write_text(f"[train]\n{text}\n")
    out = tmp_path / "out" / "m.npz"
    code, _, err = invoke("train", "--out", out)
    assert code == 2 and err.startswith(f"error: settings file {path}: {says}"), err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_relative_paths_in_a_command_table_are_the_file_s(project: Path) -> None:
    """A relative path in a command's table is relative to the file's folder, as a
    top-level key's is (``[train] out`` and ``[ingest] source`` were relative to the
    working folder, one below the project here); an option that is not a path is as
    written."""
    rng = np.random.default_rng(0)
    np.savez(
        project / "digits.npz",
        x_train=rng.integers(0, 256, (200, 28, 28), dtype=np.uint8),
        y_train=np.arange(200, dtype=np.uint8) % 10,
        x_test=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        y_test=np.arange(50, dtype=np.uint8) % 10,
    )
    (project / settings.PROJECT_FILE).write_text(
        '[ingest]\nsource = "digits.npz"\ncache-dir = "cache"\n'
        '[train]\nsource = "digits.npz"\ncache-dir = "cache"\nout = "models/m.npz"\n'
        'epochs = 1\nfeatures = "pixels"\n'
    )
    code, _, err = invoke("ingest")
    assert code == 0, err
    assert (project / "cache" / "mnist").is_dir()
    code, _, err = invoke("train")
    assert code == 0, err
    assert (project / "models" / "m.npz").is_file()
    assert not (project / "scans" / "models").exists()


def test_a_leading_tilde_in_a_command_table_is_the_home_folder(
    project: Path, model_files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``[score] output = "~/rows/x.csv"`` made a folder named ``~`` in the working folder,
    where ``-o ~/rows/x.csv`` in a shell writes under the home folder: a leading ``~`` in a
    command table is the home folder for every option (it was for those declared as paths
    only), and the rest of such a value is as typed."""
    from PIL import Image

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    shutil.copy(model_files[0], home / "m.npz")
    digit = Image.new("L", (28, 28))
    digit.paste(255, (12, 4, 16, 24))
    digit.save(project / "scans" / "a.png")
    (project / settings.PROJECT_FILE).write_text(
        '[score]\nmodel = "~/m.npz"\noutput = "~/rows/x.csv"\nprofile = false\n'
    )
    code, _, err = invoke("score", ".")
    assert code == 0, err
    assert (home / "rows" / "x.csv").read_text().startswith("path,")
    assert list(project.rglob("~")) == []
    # words are not paths: a name and a comment are recorded as written
    reg = str(tmp_path / "reg")
    assert invoke("registry", "publish", model_files[0], "--name", "d", "--registry", reg)[0] == 0
    (project / settings.PROJECT_FILE).write_text(
        '["registry request"]\nby = "~root"\ncomment = "~/see notes"\n'
    )
    code, out, err = invoke("registry", "request", "d:1", "champion", "--registry", reg, "--json")
    assert code == 0, err
    said = json.loads(out)["request"]
    assert (said["requested_by"]["by"], said["comment"]) == ("~root", "~/see notes"), said


@pytest.mark.parametrize("table", ["", "registry list", "run"])
@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        (
            'endpoint-url = "http://h:1/path"\nregistry = "s3://bucket/p"',
            "endpoint-url",
            "S3 endpoint URL (--endpoint-url, AWS_ENDPOINT_URL) 'http://h:1/path' has a path",
        ),
        ('registry = "s3://bucket/p?x=1"', "registry", "registry URI 's3://bucket/p?…' has a"),
        ('registry = "s3://b/p"', "registry", "S3 bucket name 'b' is not valid"),
    ],
)
def test_a_location_the_store_refuses_names_the_file_and_key(
    project: Path, monkeypatch: pytest.MonkeyPatch, table: str, text: str, key: str, says: str
) -> None:
    """A registry or endpoint from a settings file, top-level or in a command's table, that
    the store refuses before any request: the line names the file and the key, as for a
    value click or the request refuses (it read as if --endpoint-url had been typed)."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv(settings.ENV_REGISTRY, raising=False)
    path = project / settings.PROJECT_FILE
    path.write_text(f'["{table}"]\n{text}\n' if table else f"{text}\n")
    where = f"[{table}] " if table else ""
    code, _, err = invoke(*(table or "registry list").split())
    assert code == 2 and err.startswith(f"error: settings file {path}: {where}{key}: {says}"), err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("given", ["environment", "typed", "file"])
def test_an_endpoint_botocore_refuses_is_blamed_on_the_endpoint(
    project: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    """botocore refuses 'http://bad_host:9000' (an underscore in the host): the line named
    the settings file's registry key, which gave a good s3:// URI, whether the endpoint came
    from the environment, the command line or the file; it is the endpoint's fault."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv(settings.ENV_REGISTRY, raising=False)
    path = project / settings.PROJECT_FILE
    bad = "http://bad_host:9000"
    endpoint = f'endpoint-url = "{bad}"\n' if given == "file" else ""
    path.write_text(f'registry = "s3://bucket/p"\n{endpoint}')
    if given == "environment":
        monkeypatch.setenv("AWS_ENDPOINT_URL", bad)
    code, _, err = invoke(
        "registry", "list", *(["--endpoint-url", bad] if given == "typed" else [])
    )
    says = (
        f"cannot set up the S3 client for s3://bucket/p: botocore refused the endpoint URL '{bad}'"
    )
    where = f"settings file {path}: endpoint-url: " if given == "file" else ""
    assert code == 2 and err.startswith(f"error: {where}{says}"), err
