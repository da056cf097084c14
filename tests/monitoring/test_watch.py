"""The watch on scored batches, as users run it: `softmax-pipe score` and the batch-scoring
flow leave profiles, flag drift on letters and on a new script but not on fresh MNIST-like
digits, send the drift event to Prefect, and `softmax-pipe monitor` shows the history."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from registry import Registry, layout
from registry.events import SCORING_DRIFT
from registry.monitoring import history, put_profile
from softmax_core import settings
from softmax_core.errors import InvalidNameError
from softmax_core.mnist import Dataset
from softmax_core.monitoring import Profile, check_drift
from softmax_core.report.monitor import render_monitor
from tests import scoring_data as sd
from tests.cli_invoke import invoke
from tests.monitoring import folders
from tests.report import chromium

EVENT_WAIT_SECONDS = 90


@pytest.fixture(scope="module")
def ds(mnist_dir: Path, session_cache: Path) -> Dataset:
    return sd.mnist(mnist_dir, session_cache)


@pytest.fixture(scope="module")
def model(mnist_dir: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sd.trained_model(mnist_dir, session_cache, tmp_path_factory)


@pytest.fixture(scope="module")
def three(ds: Dataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Letters and Eastern Arabic-Indic digits (DejaVu), and 2,000 MNIST training digits."""
    root = tmp_path_factory.mktemp("drift-folders")
    return {
        "letters": folders.render(root / "letters", folders.LETTERS, 300, seed=1),
        "arabic": folders.render(root / "arabic", folders.ARABIC_INDIC, 300, seed=2),
        "mnist-train": folders.mnist_pngs(root / "mnist-train", ds.x_train, 2000, seed=3),
    }


@pytest.fixture
def with_mnist(mnist_dir: Path, session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MNIST at hand for the reference, as a user who set SOFTMAX_PIPE_MNIST has it."""
    monkeypatch.setenv(settings.ENV_MNIST, str(mnist_dir))
    monkeypatch.setenv(settings.ENV_CACHE, str(session_cache))


@pytest.fixture
def published(model: Path, tmp_path: Path) -> Path:
    reg = tmp_path / "reg"
    with Registry.open(str(reg), cache_dir=tmp_path / "c") as r:
        r.publish(model, "digits", alias="champion")
    return reg


@pytest.mark.slow
def test_drift_is_flagged_on_letters_and_a_new_script_not_on_fresh_digits(
    with_mnist: None, published: Path, three: dict[str, Path], tmp_path: Path
) -> None:
    flagged = {}
    for kind, folder in three.items():
        out = tmp_path / f"{kind}.csv"
        code, _, stderr = invoke(
            "score", folder, "-m", "digits@champion", "--registry", published, "-o", out
        )
        assert code == 0, stderr
        profile = Profile.from_bytes((tmp_path / f"{kind}.csv.profile.json").read_bytes(), kind)
        assert profile.drift is not None and profile.drift.checked, stderr
        assert profile.model == "digits:1" and profile.input == str(folder)
        # every image read or, by the default model (11 classes), rejected as not a digit
        assert profile.total == profile.ok + profile.rejected == len(list(folder.iterdir()))
        assert profile.failed == 0
        assert sum(profile.labels) == sum(profile.confidence) == profile.ok
        flagged[kind] = profile.drift.flagged
        drift_lines = [line for line in stderr.splitlines() if line.lower().startswith("drift")]
        assert len(drift_lines) == 1, stderr
        assert drift_lines[0].startswith("DRIFT: " if profile.drift.flagged else "drift: none")
        print(kind, drift_lines[0])
    assert flagged == {"letters": True, "arabic": True, "mnist-train": False}

    # the registry holds the three profiles in order, and the version's reference once
    with Registry.open(str(published), cache_dir=tmp_path / "c") as reg:
        runs = history(reg.store, "digits")
        keys = list(reg.store.list_keys("monitoring/"))
    assert [p.input for _, p in runs.profiles] == [str(f) for f in three.values()]
    assert "monitoring/digits/references/00000001.json" in keys
    assert len([k for k in keys if "/profiles/" in k]) == 3

    code, stdout, stderr = invoke(
        "monitor", "digits@champion", "--registry", published, "-o", tmp_path / "m.html"
    )
    assert code == 0, stderr
    rows = [line for line in stdout.splitlines() if re.match(r"^\S\s+\d+\s", line)]
    assert len(rows) == 3, stdout
    assert [("DRIFT" in r) for r in rows] == [True, True, False], stdout
    assert "digits@champion is digits:1" in stderr
    code, stdout, _ = invoke("monitor", "digits", "--registry", published, "--json", "--last", 1)
    assert code == 0
    (last,) = json.loads(stdout)
    assert last["run"] == 3 and last["drift"]["flagged"] is False


def test_without_mnist_drift_is_not_checked_and_no_profile_means_none(
    model: Path, three: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "s.csv"
    code, _, stderr = invoke("score", three["letters"], "-m", model, "-o", out)
    assert code == 0, stderr
    assert "drift: not checked (the model has no reference profile and no MNIST" in stderr
    assert Profile.from_bytes(Path(f"{out}.profile.json").read_bytes(), "p").drift is not None
    Path(f"{out}.profile.json").unlink()
    code, _, stderr = invoke("score", three["letters"], "-m", model, "-o", out, "--no-profile")
    assert code == 0, stderr
    assert not [
        line for line in stderr.splitlines() if line.lower().startswith(("profile", "drift"))
    ]
    assert not Path(f"{out}.profile.json").exists()


def test_rows_rewritten_without_a_profile_leave_no_earlier_profile_beside_them(
    model: Path, ds: Dataset, tmp_path: Path, prefect_harness: None
) -> None:
    """Scoring into the same FILE again with --no-profile left FILE.profile.json of the
    earlier run beside the new rows (its counts, drift and estimated accuracy of other
    images). Once the new rows are in place it goes, from the command and the flow; a
    run that fails before replacing the rows leaves both files as they were."""
    from flows.scoring import run_batch_scoring
    from softmax_core.requests import ModelRef, Output, ScoringRequest

    images = folders.mnist_pngs(tmp_path / "imgs", ds.x_train, 5, seed=7)
    out, beside = tmp_path / "s.csv", tmp_path / "s.csv.profile.json"
    code, _, stderr = invoke("score", images, "-m", model, "-o", out)
    assert code == 0 and beside.is_file(), stderr
    rows, profile = out.read_bytes(), beside.read_bytes()

    (tmp_path / "empty").mkdir()
    code, _, stderr = invoke("score", tmp_path / "empty", "-m", model, "-o", out, "--no-profile")
    assert code == 3, stderr
    assert out.read_bytes() == rows and beside.read_bytes() == profile

    one = sorted(images.iterdir())[0]
    code, _, stderr = invoke("score", one, "-m", model, "-o", out, "--no-profile")
    assert code == 0, stderr
    assert len(out.read_text().splitlines()) == 2 and not beside.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "imgs", "s.csv"]

    code, _, stderr = invoke("score", images, "-m", model, "-o", out)
    assert code == 0 and beside.is_file(), stderr
    run_batch_scoring(
        ScoringRequest(str(one), ModelRef(str(model)), Output(str(out), profile=False))
    )
    assert len(out.read_text().splitlines()) == 2 and not beside.exists()


def test_the_reference_of_a_renamed_model_file_names_the_file_scoring_now(
    model: Path, ds: Dataset, tmp_path: Path, with_mnist: None
) -> None:
    """The reference of a model file is kept by its sha256; a copy under another name
    found it and its drift line said ``(MNIST test through <the first name>)``, a file
    the run did not use. It names the file that scored."""
    images = folders.mnist_pngs(tmp_path / "imgs", ds.x_train, 20, seed=5)
    code, _, stderr = invoke("score", images, "-m", model, "-o", tmp_path / "a.csv")
    assert code == 0 and f"(MNIST test through {model})" in stderr, stderr
    renamed = tmp_path / "renamed.npz"
    renamed.write_bytes(model.read_bytes())
    code, _, stderr = invoke("score", images, "-m", renamed, "-o", tmp_path / "b.csv")
    assert code == 0, stderr
    (drift,) = [line for line in stderr.splitlines() if line.lower().startswith("drift")]
    assert f"(MNIST test through {renamed})" in drift and str(model) not in stderr, stderr
    kept = Profile.from_bytes((tmp_path / "b.csv.profile.json").read_bytes(), "p")
    assert (
        kept.drift is not None
        and kept.drift.reference == f"the reference (MNIST test through {renamed})"
    )


def _events(prefix: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )

    filt = EventFilter(
        # pydantic takes a datetime for Prefect's DateTime
        occurred=EventOccurredFilter(since=datetime.now(UTC) - timedelta(days=1)),  # type: ignore[arg-type]
        event=EventNameFilter(name=[SCORING_DRIFT]),
        resource=EventResourceFilter(id_prefix=[prefix]),
    )
    with get_client(sync_client=True) as client:
        return list(client.read_events(filter=filt, limit=50).events)


@pytest.mark.slow
def test_the_drift_event_reaches_prefect_from_the_command_and_the_flow(
    prefect_harness: None,
    with_mnist: None,
    published: Path,
    three: dict[str, Path],
    tmp_path: Path,
) -> None:
    from flows.scoring import run_batch_scoring
    from softmax_core.requests import Location, ModelRef, Output, ScoringRequest

    code, _, stderr = invoke(
        "score", three["letters"], "-m", "digits@champion", "--registry", published,
        "-o", tmp_path / "cli.csv",
    )  # fmt: skip
    assert code == 0 and "DRIFT" in stderr, stderr
    where = Location(registry=str(published))
    summary = run_batch_scoring(
        ScoringRequest(
            str(three["arabic"]),
            ModelRef("digits@champion", where),
            Output(str(tmp_path / "flow.csv")),
        )
    )
    assert summary.profile is not None and summary.profile.drift is not None
    assert summary.profile.drift.flagged
    assert any(line.startswith("DRIFT") for line in summary.lines())
    assert (tmp_path / "flow.csv.profile.json").is_file()

    prefix = f"softmax-pipe.registry.{published}.model.digits"
    deadline = time.monotonic() + EVENT_WAIT_SECONDS
    got: list[Any] = []
    while time.monotonic() < deadline and len(got) < 2:
        got = _events(prefix)
        time.sleep(0.5)
    inputs = sorted(e.payload["input"] for e in got)
    assert inputs == sorted([str(three["letters"]), str(three["arabic"])]), inputs
    event = got[0]
    assert event.payload["model"] == "digits:1"
    assert set(event.payload["p_values"]) == {"labels", "rejected", "confidence"}
    assert event.payload["p_values"]["labels"] < event.payload["threshold"]


# --- the registry's keys ----------------------------------------------------------------------


def test_monitoring_keys_stay_under_their_prefix() -> None:
    assert layout.profile_key("mnist", 3) == "monitoring/mnist/profiles/000000000003.json"
    assert layout.reference_key("mnist", 2) == "monitoring/mnist/references/00000002.json"
    for bad in ("../models", "a/b", "", ".", ".."):
        with pytest.raises(InvalidNameError):
            layout.profile_key(bad, 1)
    with pytest.raises(InvalidNameError):
        layout.profile_key("mnist", 0)


def _tiny(n: int) -> Profile:
    return Profile(
        model="m:1", created=f"t{n}", input=f"run {n}", total=n, ok=n, rejected=0, failed=0,
        labels=(n,) + (0,) * 9, confidence_edges=(0.0, 1.0), confidence=(n,),
        confidence_sum=0.5 * n,
    )  # fmt: skip


def test_racing_runs_each_store_their_profile(tmp_path: Path) -> None:
    with Registry.open(str(tmp_path / "reg"), cache_dir=tmp_path / "c") as reg:
        keys: list[str] = []
        racers = [
            threading.Thread(target=lambda n=n: keys.append(put_profile(reg.store, "m", _tiny(n))))
            for n in range(1, 9)
        ]
        for t in racers:
            t.start()
        for t in racers:
            t.join()
        assert len(set(keys)) == 8
        found = history(reg.store, "m")
        assert [seq for seq, _ in found.profiles] == list(range(1, 9))
        assert sorted(p.total for _, p in found.profiles) == list(range(1, 9))
        reg.store.put(layout.profile_key("m", 9), b"{not json")
        assert history(reg.store, "m").unreadable == (layout.profile_key("m", 9),)
        assert [s for s, _ in history(reg.store, "m", last=2).profiles] == [8]


def test_monitor_errors_have_their_exit_codes(tmp_path: Path) -> None:
    from tests.registry.helpers import make_model

    reg = tmp_path / "reg"
    code, _, stderr = invoke("monitor", "nothing@champion", "--registry", reg)
    assert code == 3 and "no model named 'nothing'" in stderr
    code, _, stderr = invoke("monitor", "a/b", "--registry", reg)
    assert code == 2 and "'/'" in stderr
    # a model file said "model name 'm/full.npz' contains '/'": its runs are in no registry
    model = make_model(1).save(tmp_path / "m" / "full.npz")
    for ref in (model, "m/other.npz"):
        code, _, stderr = invoke("monitor", ref, "--registry", reg)
        assert code == 2 and stderr.strip() == (
            "error: monitor shows the runs of a registry model (REF is NAME, NAME@ALIAS or "
            f"NAME:N), not of a model file: a score run with {ref} writes its profile beside "
            "its --output (FILE.profile.json)"
        )
    code, _, stderr = invoke("monitor", "m", "--last", "0", "--registry", reg)
    assert code == 2
    code, stdout, _ = invoke("monitor", "--help")
    assert code == 0 and "Bonferroni" in stdout and "Exit codes" in stdout


def test_monitor_checks_out_before_reading_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--out is checked once the model is known, before the profiles are read: one line,
    exit 4 for a folder that cannot be made, 2 for a folder or a file in the way; a missing
    folder is made."""
    import registry.monitoring
    from tests.registry.helpers import make_model

    reg = tmp_path / "reg"
    with Registry.open(str(reg), cache_dir=tmp_path / "c") as r:
        r.publish(make_model(1), "m")

    def no_reads(*args: object, **kwargs: object) -> None:
        raise AssertionError("read the history before checking --out")

    (tmp_path / "afile").write_text("x")
    cases = [
        ("/proc/softmax-pipe-no-such-folder/m.html", 4, "cannot create the folder /proc/"),
        (tmp_path / "afile" / "m.html", 2, "afile is a file, not a folder"),
        (tmp_path, 2, "is a folder; expected a file name"),
        (f"{tmp_path}/new/", 2, "new/ names a folder (it ends in '/'); expected a file name"),
    ]
    with monkeypatch.context() as patched:
        patched.setattr(registry.monitoring, "history", no_reads)
        for out, expected, says in cases:
            code, stdout, stderr = invoke("monitor", "m", "--registry", reg, "-o", out)
            assert (code, stdout) == (expected, ""), stderr
            assert says in stderr and len(stderr.strip().splitlines()) == 1, stderr
    out = tmp_path / "new" / "m.html"
    code, _, stderr = invoke("monitor", "m", "--registry", reg, "-o", out)
    assert code == 0, stderr
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")


# --- the page ---------------------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _history(n: int) -> list[tuple[int, Profile]]:
    rng = np.random.default_rng(0)
    base = _tiny(1000)
    edges = settings.PROFILE_CONFIDENCE_EDGES
    ref = Profile(**{**base.__dict__, "confidence_edges": edges, "confidence": (0,) * 10 + (1000,)})
    out = []
    for i in range(n):
        labels = tuple(int(c) for c in rng.multinomial(500, [0.1] * 10))
        conf = tuple(int(c) for c in rng.multinomial(500, [0.01] * 5 + [0.19] * 5 + [0.0]))
        p = Profile(
            model=f"m:{i + 1}{HOSTILE}", created=f"2026-01-0{i + 1}", input=f"/in/{HOSTILE}",
            total=500, ok=500 - 10 * i, rejected=10 * i, failed=0, labels=labels,
            confidence_edges=edges, confidence=conf, confidence_sum=0.9 * (500 - 10 * i),
        )  # fmt: skip
        out.append((i + 1, p.with_drift(check_drift(p, ref))))
    return out


def test_the_page_escapes_every_user_string() -> None:
    page = render_monitor(HOSTILE, _history(3), where=f"s3://b/{HOSTILE}")
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page
    assert page.count("<svg") == 2


@pytest.mark.slow
def test_the_page_renders_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "monitor.html"
    page.write_text(render_monitor("digits", _history(5), where="/reg"), encoding="utf-8")
    png = chromium.screenshot(page, tmp_path / "s.png", height=1000)
    shot = np.asarray(Image.open(png).convert("RGB")).astype(int)
    not_white = np.any(shot < 235, axis=2).mean()
    assert not_white > 0.02, f"the screenshot is nearly blank ({not_white:.1%} non-white)"
    for colour, what in ((0x7C3AED, "confidence p-values"), (0x15803D, "estimated accuracy")):
        rgb = [(colour >> 16) & 255, (colour >> 8) & 255, colour & 255]
        drawn = np.all(np.abs(shot - rgb) < 30, axis=2).sum()
        assert drawn > 50, f"the {what} line was not drawn ({drawn} pixels)"
    dom = chromium.loaded_dom(page)
    text = re.sub(r"<[^>]+>", " ", dom)
    assert "Monitoring: digits" in text
    assert dom.count("<circle") >= 5 * 5  # 5 runs x (2 + 3) series


def test_a_store_that_refuses_the_profile_costs_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry import monitoring
    from softmax_core.errors import PermissionDeniedError
    from softmax_core.requests import Location, ModelRef
    from tests.registry.helpers import make_model

    reg_path = tmp_path / "reg"
    with Registry.open(str(reg_path), cache_dir=tmp_path / "c") as reg:
        reg.publish(make_model(1), "digits", alias="champion")
        model = reg.model("digits@champion")

    def refuse(store: Any, name: str, profile: Profile) -> str:
        raise PermissionDeniedError(
            "denied", key=layout.profile_key(name, 1), reason="AccessDenied"
        )

    monkeypatch.setattr(monitoring, "put_profile", refuse)
    ref = ModelRef("digits@champion", Location(registry=str(reg_path), cache_dir=str(tmp_path)))
    done = monitoring.watch(_tiny(5), model, ref, output=str(tmp_path / "rows.csv"))
    assert done.places == (str(tmp_path / "rows.csv.profile.json"),)
    (problem,) = done.problems
    assert "needs write access to monitoring/" in problem and "AccessDenied" in problem
    assert done.profile.drift is not None and not done.profile.drift.checked
    assert "no MNIST is at hand" in done.profile.drift.reason


def test_a_profile_the_disk_refuses_is_one_line_that_says_why_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk: the summary said "not written (it goes beside a local --output file,
    ...)" and then "profile not stored: cannot write X: cannot write X: No space left on
    device"; now one line, the reason once (atomic_write's, or the OSError's)."""
    import errno

    from registry import monitoring
    from softmax_core.errors import StorageError
    from softmax_core.requests import Location, ModelRef
    from softmax_core.scoring import ScoreSummary
    from tests.registry.helpers import make_model

    beside = tmp_path / "rows.csv.profile.json"
    ref = ModelRef("m.npz", Location(cache_dir=str(tmp_path)))
    for failure in [
        StorageError(f"cannot write {beside}: No space left on device"),
        OSError(errno.ENOSPC, "No space left on device"),
    ]:

        def full(path: Any, data: Any, failure: Exception = failure) -> Any:
            raise failure

        monkeypatch.setattr(monitoring, "atomic_write", full)
        monkeypatch.setattr(monitoring, "_file_reference", lambda *a: "no MNIST at hand")
        done = monitoring.watch(_tiny(5), make_model(1), ref, output=str(tmp_path / "rows.csv"))
        assert done.places == () and done.problems == (
            f"cannot write {beside}: No space left on device",
        )
        summary = ScoreSummary(model="m", root="r")
        summary.profile, summary.profile_places, summary.profile_problems = (
            done.profile,
            done.places,
            done.problems,
        )
        assert summary.profile_lines() == [
            "profile: estimated accuracy 50.0%, rejected 0.0%; not written: "
            f"cannot write {beside}: No space left on device",
            "drift: not checked (no MNIST at hand)",
        ]


# --- what the table and the page show ------------------------------------------------------


class _PageText(HTMLParser):
    """The page as a reader sees it: its text, and the labels under the charts' x axes."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.axis: list[list[str]] = []  # one list per chart
        self._in_axis = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self.axis.append([])
        self._in_axis = tag == "text" and ("text-anchor", "middle") in attrs

    def handle_endtag(self, tag: str) -> None:
        self._in_axis = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_axis:
            self.axis[-1].append(data)

    def joined(self) -> str:
        return " ".join(" ".join(self.text).split())


def _registry_with(tmp_path: Path, profiles: list[Profile | bytes]) -> Path:
    """A registry holding model m and these profiles as runs 1, 2, ... (bytes: damaged)."""
    from tests.registry.helpers import make_model

    reg = tmp_path / "reg"
    with Registry.open(str(reg), cache_dir=tmp_path / "c") as r:
        r.publish(make_model(1), "m")
        for seq, p in enumerate(profiles, start=1):
            data = p if isinstance(p, bytes) else p.to_bytes()
            r.store.put(layout.profile_key("m", seq), data)
    return reg


def _all_failed(n: int) -> Profile:
    return Profile(**{**_tiny(1).__dict__, "total": n, "ok": 0, "failed": n, "labels": (0,) * 10,
                      "confidence": (0,), "confidence_sum": 0.0})  # fmt: skip


def test_the_charts_number_runs_as_the_table(tmp_path: Path) -> None:
    """--last 2 of four runs were labelled 1, 2 under the charts while the table said 3, 4;
    a damaged profile skipped shifted every later label."""
    reg = _registry_with(tmp_path, [_tiny(1), _tiny(2), _tiny(3), _tiny(4)])
    out = tmp_path / "m.html"
    code, stdout, stderr = invoke("monitor", "m", "--last", 2, "--registry", reg, "-o", out)
    assert code == 0, stderr
    page = _PageText(out.read_text(encoding="utf-8"))
    assert page.axis == [["3", "4"], ["3", "4"]]
    assert [line.split()[1] for line in stdout.splitlines() if re.match(r"^│\s+\d", line)] == [
        "3",
        "4",
    ]
    assert "2 scoring runs in" in page.joined()

    reg = _registry_with(tmp_path / "damaged", [_tiny(1), b"{not json", _tiny(3)])
    code, _, stderr = invoke("monitor", "m", "--registry", reg, "-o", out)
    assert code == 0 and "skipped an unreadable profile" in stderr
    assert _PageText(out.read_text(encoding="utf-8")).axis == [["1", "3"], ["1", "3"]]

    code, _, stderr = invoke("monitor", "m", "--last", 1, "--registry", reg, "-o", out)
    assert code == 0, stderr
    assert "1 scoring run in" in _PageText(out.read_text(encoding="utf-8")).joined()


def test_hundreds_of_runs_label_every_kth_run_by_its_number() -> None:
    for n in (1, 9, 10, 11, 25, 120, 640):
        runs = [(seq, _tiny(seq)) for seq in range(101, 101 + n)]
        (axis, _) = _PageText(render_monitor("m", runs, where="/reg")).axis
        labelled = [int(a) for a in axis]
        assert 1 <= len(labelled) <= 10, (n, labelled)
        assert labelled[0] == 101, (n, labelled)
        steps = {b - a for a, b in itertools.pairwise(labelled)}
        assert len(steps) <= 1 and all(s in (1, 2, 5, 10, 20, 50, 100) for s in steps), labelled
        assert n < 10 or labelled[-1] + max(steps) > 100 + n  # the last label near the end


def test_a_run_whose_every_image_failed_shows_it(tmp_path: Path) -> None:
    """It showed `n 2 | rejected 0.0%` and no failed column, and the page's card said
    rejected 0.0%: a run of nothing read looked like a harmless one."""
    reg = _registry_with(tmp_path, [_tiny(4), _all_failed(2)])
    out = tmp_path / "m.html"
    code, stdout, stderr = invoke("monitor", "m", "--registry", reg, "-o", out)
    assert code == 0, stderr
    header = next(line for line in stdout.splitlines() if " run " in line)
    cells = [c.strip() for c in header.strip("┃").split("┃")]
    assert cells[3:6] == ["n", "failed", "rejected"], header
    rows = [
        [c.strip() for c in line.strip("│").split("│")]
        for line in stdout.splitlines()
        if re.match(r"^│\s+\d", line)
    ]
    assert [r[3:6] for r in rows] == [["4", "0.0%", "0.0%"], ["2", "100.0%", "-"]], stdout

    code, stdout, _ = invoke("monitor", "m", "--registry", reg, "--json")
    assert code == 0
    doc = json.loads(stdout)
    assert [(d["failed"], d["failed_share"], d["rejected_share"]) for d in doc] == [
        (0, 0.0, 0.0),
        (2, 1.0, None),
    ]

    text = _PageText(out.read_text(encoding="utf-8")).joined()
    assert "100.0% failed, last run" in text and "— rejected, last run" in text, text
    assert "failed share" in text  # the trend's legend
    assert "2 100.0% — —" in text  # the table's row: n, failed, rejected, est. accuracy


def test_a_scored_folder_of_broken_files_is_a_failed_run(
    published: Path, with_mnist: None, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"x")
    (bad / "b.jpg").write_bytes(b"")
    code, _, stderr = invoke("score", bad, "-m", "digits@champion", "--registry", published,
                             "-o", tmp_path / "s.csv")  # fmt: skip
    assert code != 0
    assert "profile: no image read; written to" in stderr, stderr
    code, stdout, stderr = invoke("monitor", "digits", "--registry", published, "--json")
    assert code == 0, stderr
    (run,) = json.loads(stdout)
    assert (run["total"], run["failed"], run["failed_share"], run["rejected_share"]) == (
        2,
        2,
        1.0,
        None,
    )


def test_the_table_fits_a_terminal_and_a_pipe_gets_no_padding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was drawn 140 columns wide whatever the terminal, and piped its title was padded
    with trailing spaces."""
    reg = _registry_with(tmp_path, [_tiny(3), _all_failed(2)])
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        monkeypatch.delenv(var, raising=False)
    code, piped, stderr = invoke("monitor", "m", "--registry", reg)
    assert code == 0, stderr
    lines = piped.splitlines()
    assert lines[0] == "scoring runs of m"
    assert [line for line in lines if line != line.rstrip()] == []
    assert len({len(line) for line in lines[1:]}) == 1  # the table, one width
    assert len(lines) == 1 + 4 + 2, piped  # title, borders and header, a line a run
    assert len(lines[1]) > 100  # not folded to 80 columns

    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # what rich takes for a terminal
    monkeypatch.setenv("COLUMNS", "80")
    code, shown, stderr = invoke("monitor", "m", "--registry", reg)
    assert code == 0, stderr
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown).splitlines()
    assert max(len(line) for line in plain) <= 80, shown
    assert plain[0] == "scoring runs of m" and any(" run " in line for line in plain), shown
