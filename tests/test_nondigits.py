"""tests/nondigits.py, the unseen non-digit set: every kind from its installed sources,
deterministic, files as a user's folder holds them, and nothing shared with the generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from softmax_core import negatives
from tests import nondigits as nd


def test_every_kind_written_the_same_bytes_for_the_same_seed(tmp_path: Path) -> None:
    a = nd.write(tmp_path / "a", per_kind=4, seed=1)
    b = nd.write(tmp_path / "b", per_kind=4, seed=1)
    c = nd.write(tmp_path / "c", per_kind=4, seed=2)
    assert list(a) == list(nd.KINDS)
    for kind in nd.KINDS:
        assert len(a[kind]) == 4
        assert [p.read_bytes() for p in a[kind]] == [p.read_bytes() for p in b[kind]]
        assert [p.read_bytes() for p in a[kind]] != [p.read_bytes() for p in c[kind]]
        for p in a[kind]:
            assert p.parent == tmp_path / "a" / kind and p.suffix in (".jpg", ".png")
            with Image.open(p) as im:
                assert im.mode == "RGB"
                assert nd.SIDE_RANGE[0] // 2 <= max(im.size) <= nd.SIDE_RANGE[1] + 1


def test_sources_are_installed_files_not_the_generators() -> None:
    assert len(nd.photo_files()) == 3 and len(nd.icon_designs()) >= 20
    faces = [f for f in nd.letter_faces() if f is not None]
    assert faces and not {f.name for f in faces} & set(negatives.FACES)
    assert all(has for _, has in nd.symbol_faces())
    assert not set(nd.LETTERS) & negatives.DIGIT_LIKE


def test_doodles_are_drawn_by_distance_not_by_pillow() -> None:
    """A straight path of width 4 covers a 4-pixel band (with its one-pixel ramp)."""
    cover = nd.rasterise([np.array([[5.0, 10.0], [35.0, 10.0]])], 20, 40, 4.0)
    assert cover[10, 20] == 1.0 and cover[10 - 4, 20] == 0.0 and cover[2, 20] == 0.0
    assert 0.0 < cover[12, 20] <= 1.0
    rng = np.random.default_rng(0)
    for name in nd.DOODLES:
        assert nd.doodle_paths(name, rng)


def test_each_file_is_named_after_what_it_shows(tmp_path: Path) -> None:
    written = nd.write(tmp_path, per_kind=6, seed=3)
    shown = {kind: [nd.shows(p) for p in paths] for kind, paths in written.items()}
    assert [p.name.split("-", 1)[0] for p in written["symbols"]] == [f"{i:04d}" for i in range(6)]
    assert set(shown["photos"]) == {p.stem for p in nd.photo_files()}  # in turn
    designs = {sizes[0].stem for sizes in nd.icon_designs()}  # a design: its files' prefix
    assert all(any(d.startswith(s) for d in designs) for s in shown["icons"])
    assert all(len(s) == 1 and s in nd.SYMBOLS for s in shown["symbols"])
    assert all(1 <= len(s) <= 2 and set(s) <= set(nd.LETTERS) for s in shown["letters"])
    assert shown["doodles"] == [d.replace(" ", "_") for d in nd.DOODLES[:6]]
