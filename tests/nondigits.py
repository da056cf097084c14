"""Non-digit images from sources other than the negative generator: the yardstick of
"not a digit" (issue 24). Figures measured on :mod:`softmax_core.negatives`' own pages
would flatter a model trained on them, so nothing here calls it or shares its drawing.

Every source is a file shipped inside a package of the dev install (``pip install -e
.[dev]``), found through the package, never downloaded; a missing one fails (never a
silent skip). The kinds::

    photos    crops of photographs: sklearn's sample images (``sklearn/datasets/images/
              china.jpg``, ``flower.jpg``) and matplotlib's ``sample_data/grace_hopper.jpg``,
              a window of 5% to 60% of the photo's shorter side
    icons     icons and logos: matplotlib's toolbar icons (``mpl-data/images/*.png``) and
              ``sample_data/logo2.png``, ``Minduka_Present_Blue_Pack.png``; apprise's
              notification icons (``apprise/assets/themes/default/*.png``, a dependency of
              prefect); prefect's UI icons and logo (``prefect/server/ui/ico/*.png``,
              ``prefect/server/api/static/*.png``); distributed's ``numpy.png``,
              ``pandas.png``, ``python.png`` (``distributed/http/static/images``);
              composited onto a background that contrasts with them
    symbols   SYMBOLS ($ § & ¶ © ∫ √ ? ∑ € ♠ ★ ☺ ✓ ⊕ ...) in matplotlib's STIX faces and
              prefect's Geist faces (only the code points a face has, by its cmap)
    doodles   drawings of things: smileys, houses, trees, stars, suns, flowers, fish, cats,
              cars, stick figures, clouds, umbrellas; strokes rasterised here as distance
              fields (scipy's distance transform, not Pillow's line drawing) with a hand's
              wobble (sums of sines along the stroke)
    letters   LETTERS (the Latin letters that are not digit-like, as the generator's
              DIGIT_LIKE says) in faces the generator does not use: matplotlib's Computer
              Modern (cmr10, cmti10, cmss10, cmtt10, cmb10) and STIX faces, prefect's Geist
              faces, and Pillow's built-in face (Aileron)

Each image is a user's file: RGB, its longer side 28 to 300 pixels (log-uniform), ink and
paper in colour (photos and icons as they are), a little sensor noise, JPEG (quality
60-95) or PNG, named ``<kind>/<n>-<what>.<ext>`` after what it shows (:func:`shows`): the
photo, the icon's design, the doodle, the letters, or a symbol's code point (``u00a9``).
Everything is drawn from ``numpy.random.default_rng([seed, kind])``: the same seed and
installed packages give the same files, byte for byte.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from softmax_core.negatives import DIGIT_LIKE, FACES

KINDS = ("photos", "icons", "symbols", "doodles", "letters")
SIDE_RANGE = (28, 300)  # the file's longer side, pixels (log-uniform)
SYMBOLS = "$§&¶©®™∫√?∑∏€£¥¢♠♣♥♦★☺✓†‡∀∃∈∇⊕⊗∩∪⊂≈≠±÷→⇒↑♪♫☼⌘ℓℵЖЯЮшЩф"
LETTERS = "".join(
    c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in DIGIT_LIKE
)

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]


# --- where the sources are --------------------------------------------------------------


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {name!r} is not installed: pip install -e '.[dev]'")
    return Path(spec.origin).parent


def _existing(paths: list[Path], what: str) -> list[Path]:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        raise FileNotFoundError(f"{what}: missing {missing or 'all'} (pip install -e '.[dev]')")
    return paths


@functools.cache
def photo_files() -> tuple[Path, ...]:
    sk = _package_dir("sklearn") / "datasets" / "images"
    mpl = _package_dir("matplotlib") / "mpl-data" / "sample_data"
    return tuple(
        _existing([sk / "china.jpg", sk / "flower.jpg", mpl / "grace_hopper.jpg"], "photos")
    )


@functools.cache
def icon_files() -> tuple[Path, ...]:
    mpl = _package_dir("matplotlib") / "mpl-data"
    pf = _package_dir("prefect") / "server"
    apprise = _package_dir("apprise") / "assets" / "themes" / "default"
    dist = _package_dir("distributed") / "http" / "static" / "images"
    found = sorted((mpl / "images").glob("*.png"))
    found += [
        mpl / "sample_data" / "logo2.png",
        mpl / "sample_data" / "Minduka_Present_Blue_Pack.png",
    ]
    found += sorted(apprise.glob("*.png"))
    found += sorted((pf / "ui" / "ico").glob("*.png")) + sorted(
        (pf / "api" / "static").glob("*.png")
    )
    found += [dist / "numpy.png", dist / "pandas.png", dist / "python.png"]
    return tuple(_existing(found, "icons"))


@functools.cache
def icon_designs() -> tuple[tuple[Path, ...], ...]:
    """The icons grouped by design (one design's sizes and dark variant together), so that
    each design is drawn as often as another whatever the number of its sizes."""
    groups: dict[str, list[Path]] = {}
    for f in icon_files():
        groups.setdefault(f"{f.parent}/{_design(f)}", []).append(f)
    return tuple(tuple(v) for _, v in sorted(groups.items()))


def _design(icon: Path) -> str:
    """An icon file's design: its name without size and variant (``filesave_large``)."""
    return re.sub(r"(-\d+x\d+|_large|-dark)+$", "", icon.stem)


@functools.cache
def letter_faces() -> tuple[Path | None, ...]:
    """Faces the generator does not use (None: Pillow's built-in face)."""
    ttf = _package_dir("matplotlib") / "mpl-data" / "fonts" / "ttf"
    geist = _package_dir("prefect") / "server" / "ui-v2" / "fonts"
    names = ["cmr10", "cmti10", "cmss10", "cmtt10", "cmb10", "STIXGeneral", "STIXGeneralItalic"]
    names += ["STIXGeneralBol"]
    found: list[Path | None] = list(_existing([ttf / f"{n}.ttf" for n in names], "letter faces"))
    found += _existing(sorted(geist.glob("Geist*.ttf")), "Geist faces")
    assert not {p.name for p in found if p is not None} & set(FACES)
    return (*found, None)


@functools.cache
def symbol_faces() -> tuple[tuple[Path, str], ...]:
    """(face, the SYMBOLS it has) for the STIX and Geist faces."""
    from fontTools.ttLib import TTFont

    ttf = _package_dir("matplotlib") / "mpl-data" / "fonts" / "ttf"
    geist = _package_dir("prefect") / "server" / "ui-v2" / "fonts"
    faces = _existing(
        [ttf / "STIXGeneral.ttf", ttf / "STIXGeneralBol.ttf", *sorted(geist.glob("Geist*.ttf"))],
        "symbol faces",
    )
    out = []
    for f in faces:
        cmap = TTFont(str(f), lazy=True).getBestCmap()
        out.append((f, "".join(c for c in SYMBOLS if ord(c) in cmap)))
    return tuple(out)


# --- finishing: a user's file ---------------------------------------------------------------


def _side(rng: np.random.Generator) -> int:
    lo, hi = SIDE_RANGE
    return round(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _paper_and_ink(rng: np.random.Generator) -> tuple[F64, F64]:
    paper = np.array([rng.uniform(0.85, 1.0)] * 3) - rng.uniform(0, 0.06, 3)
    pens = [(0.05, 0.05, 0.08), (0.1, 0.15, 0.55), (0.35, 0.35, 0.38), (0.6, 0.1, 0.1)]
    ink = np.array(pens[int(rng.integers(len(pens)))]) + rng.uniform(-0.04, 0.04, 3)
    return paper, np.clip(ink, 0, 1)


def _on_paper(cover: F32, rng: np.random.Generator) -> Image.Image:
    """Ink coverage (h, w) → an RGB page: coloured paper and pen, sensor noise."""
    paper, ink = _paper_and_ink(rng)
    c = cover[:, :, None].astype(np.float64)
    rgb = paper * (1 - c) + ink * c + rng.normal(0, rng.uniform(0.0, 0.02), cover.shape)[..., None]
    return Image.fromarray(np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8), mode="RGB")


def _save_kw(rng: np.random.Generator) -> tuple[str, dict[str, Any]]:
    if rng.random() < 0.5:
        return "jpg", {"quality": int(rng.integers(60, 96))}
    return "png", {}


# --- the kinds ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _decoded(path: Path, mode: str) -> Image.Image:
    """A source image in ``mode``, its longer side at most 1024 pixels (python.png is 5000)."""
    with Image.open(path) as im:
        img = im.convert(mode)
    if max(img.size) > 1024:
        f = 1024 / max(img.size)
        img = img.resize((round(img.width * f), round(img.height * f)), Image.Resampling.LANCZOS)
    return img


def photo(rng: np.random.Generator, i: int) -> tuple[Image.Image, str]:
    files = photo_files()
    src = _decoded(files[i % len(files)], "RGB")
    w, h = src.size
    side = round(min(w, h) * rng.uniform(0.05, 0.6))
    aspect = rng.uniform(0.6, 1.0)
    cw, ch = (side, round(side * aspect)) if rng.random() < 0.5 else (round(side * aspect), side)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = src.crop((x, y, x + cw, y + ch))
    f = _side(rng) / max(cw, ch)
    size = (max(1, round(cw * f)), max(1, round(ch * f)))
    return crop.resize(size, Image.Resampling.LANCZOS), files[i % len(files)].stem


def icon(rng: np.random.Generator, i: int) -> tuple[Image.Image, str]:
    designs = icon_designs()
    sizes = designs[int(rng.integers(len(designs)))]
    src = _decoded(sizes[int(rng.integers(len(sizes)))], "RGBA")
    alpha = np.asarray(src.getchannel("A"), np.float64) / 255
    lum = np.asarray(src.convert("L"), np.float64) / 255
    dark = (lum * alpha).sum() / max(alpha.sum(), 1e-9) < 0.6
    level = rng.uniform(0.85, 1.0) if dark else rng.uniform(0.0, 0.2)
    bg = tuple(int(255 * np.clip(level + rng.uniform(-0.05, 0.05), 0, 1)) for _ in range(3))
    w, h = src.size
    pad = rng.uniform(0.0, 0.3)
    canvas = Image.new("RGBA", (round(w * (1 + 2 * pad)), round(h * (1 + 2 * pad))), (*bg, 255))
    canvas.alpha_composite(src, (round(w * pad), round(h * pad)))
    out = canvas.convert("RGB")
    if rng.random() < 0.3:
        out = out.rotate(rng.uniform(-15, 15), Image.Resampling.BICUBIC, expand=True, fillcolor=bg)
    f = _side(rng) / max(out.size)
    size = (max(1, round(out.width * f)), max(1, round(out.height * f)))
    return out.resize(size, Image.Resampling.LANCZOS), _design(sizes[0])


def _text_page(text: str, font_of: Callable[[int], Any], rng: np.random.Generator) -> Image.Image:
    """Text drawn centred on a page of its own size and turned a little, as coverage, then
    put on paper."""
    side = _side(rng)
    aspect = rng.uniform(0.7, 1.0)
    w, h = (side, round(side * aspect)) if rng.random() < 0.5 else (round(side * aspect), side)
    w, h = max(w, SIDE_RANGE[0]), max(h, SIDE_RANGE[0])
    img = Image.new("L", (w * 2, h * 2), 0)
    draw = ImageDraw.Draw(img)
    target = rng.uniform(0.45, 0.8)
    size = 100
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font_of(size), anchor="mm")
    size = max(
        6, int(size * min(target * 2 * w / max(1, x1 - x0), target * 2 * h / max(1, y1 - y0)))
    )
    draw.text((w, h), text, font=font_of(size), fill=255, anchor="mm")
    img = img.rotate(rng.uniform(-12, 12), Image.Resampling.BICUBIC)
    cover = np.asarray(img.resize((w, h), Image.Resampling.BOX), np.float32) / np.float32(255)
    return _on_paper(cover, rng)


@functools.lru_cache(maxsize=64)
def _truetype(face: Path | None, size: int) -> Any:
    return ImageFont.load_default(size) if face is None else ImageFont.truetype(str(face), size)


def symbol(rng: np.random.Generator, i: int) -> tuple[Image.Image, str]:
    faces = symbol_faces()
    face, has = faces[i % len(faces)]
    ch = has[int(rng.integers(len(has)))]
    return _text_page(ch, functools.partial(_truetype, face), rng), f"u{ord(ch):04x}"


def letter(rng: np.random.Generator, i: int) -> tuple[Image.Image, str]:
    faces = letter_faces()
    face = faces[i % len(faces)]
    k = 1 if rng.random() < 0.7 else 2
    text = "".join(rng.choice(list(LETTERS), k).tolist())
    return _text_page(text, functools.partial(_truetype, face), rng), text


# --- doodles: strokes as distance fields ------------------------------------------------------


def _circle(
    cx: float, cy: float, r: float, a0: float = 0, a1: float = 360, ry: float | None = None
) -> F64:
    t = np.radians(np.linspace(a0, a1, max(6, int(abs(a1 - a0) / 8))))
    return np.stack([cx + r * np.cos(t), cy + (ry or r) * np.sin(t)], 1)


def _poly(*pts: tuple[float, float]) -> F64:
    return np.array(pts, dtype=np.float64)


def _smiley(rng: np.random.Generator) -> list[F64]:
    return [
        _circle(0.5, 0.5, 0.45),
        _circle(0.35, 0.38, 0.04),
        _circle(0.65, 0.38, 0.04),
        _circle(0.5, 0.52, 0.25, 25, 155),
    ]


def _house(rng: np.random.Generator) -> list[F64]:
    return [
        _poly((0.2, 0.45), (0.2, 0.95), (0.8, 0.95), (0.8, 0.45)),
        _poly((0.1, 0.5), (0.5, 0.08), (0.9, 0.5)),
        _poly((0.42, 0.95), (0.42, 0.7), (0.58, 0.7), (0.58, 0.95)),
        _poly((0.28, 0.55), (0.38, 0.55), (0.38, 0.65), (0.28, 0.65), (0.28, 0.55)),
    ]


def _tree(rng: np.random.Generator) -> list[F64]:
    u = rng.uniform
    t = np.linspace(0, 2 * math.pi, 120)
    r = 0.3 * (1 + 0.12 * np.sin(7 * t + u(0, 6)))
    crown = np.stack([0.5 + r * np.cos(t), 0.35 + r * np.sin(t)], 1)
    return [crown, _poly((0.44, 0.98), (0.45, 0.62)), _poly((0.56, 0.98), (0.55, 0.62))]


def _star(rng: np.random.Generator) -> list[F64]:
    a = np.radians(np.arange(11) * 36 - 90)
    r = np.where(np.arange(11) % 2 == 0, 0.48, 0.2)
    return [np.stack([0.5 + r * np.cos(a), 0.52 + r * np.sin(a)], 1)]


def _sun(rng: np.random.Generator) -> list[F64]:
    u = rng.uniform
    k = int(rng.integers(8, 13))
    rays = [
        _poly(
            (0.5 + 0.3 * math.cos(a), 0.5 + 0.3 * math.sin(a)),
            (0.5 + 0.47 * math.cos(a), 0.5 + 0.47 * math.sin(a)),
        )
        for a in np.linspace(0, 2 * math.pi, k, endpoint=False) + u(0, 1)
    ]
    return [_circle(0.5, 0.5, 0.2), *rays]


def _flower(rng: np.random.Generator) -> list[F64]:
    k = int(rng.integers(5, 8))
    petals = [
        _circle(0.5 + 0.17 * math.cos(a), 0.32 + 0.17 * math.sin(a), 0.09)
        for a in np.linspace(0, 2 * math.pi, k, endpoint=False)
    ]
    return [
        _circle(0.5, 0.32, 0.07),
        *petals,
        _poly((0.5, 0.5), (0.52, 0.98)),
        _circle(0.62, 0.75, 0.1, 180, 330, 0.05),
    ]


def _fish(rng: np.random.Generator) -> list[F64]:
    body = np.concatenate([_circle(0.45, 0.9, 0.55, 235, 305), _circle(0.45, 0.1, 0.55, 55, 125)])
    return [
        body,
        _poly((0.77, 0.5), (0.97, 0.3), (0.97, 0.7), (0.77, 0.5)),
        _circle(0.28, 0.45, 0.03),
    ]


def _cat(rng: np.random.Generator) -> list[F64]:
    return [
        _circle(0.5, 0.58, 0.36),
        _poly((0.2, 0.4), (0.22, 0.05), (0.42, 0.24)),
        _poly((0.58, 0.24), (0.78, 0.05), (0.8, 0.4)),
        _circle(0.38, 0.52, 0.04),
        _circle(0.62, 0.52, 0.04),
        _poly((0.3, 0.68), (0.05, 0.64)),
        _poly((0.3, 0.72), (0.05, 0.78)),
        _poly((0.7, 0.68), (0.95, 0.64)),
        _poly((0.7, 0.72), (0.95, 0.78)),
    ]


def _car(rng: np.random.Generator) -> list[F64]:
    return [
        _poly(
            (0.05, 0.7),
            (0.05, 0.5),
            (0.25, 0.48),
            (0.35, 0.3),
            (0.65, 0.3),
            (0.78, 0.48),
            (0.95, 0.52),
            (0.95, 0.7),
            (0.05, 0.7),
        ),
        _circle(0.27, 0.72, 0.1),
        _circle(0.73, 0.72, 0.1),
    ]


def _stick_figure(rng: np.random.Generator) -> list[F64]:
    return [
        _circle(0.5, 0.15, 0.12),
        _poly((0.5, 0.27), (0.5, 0.65)),
        _poly((0.2, 0.4), (0.5, 0.45), (0.8, 0.4)),
        _poly((0.3, 0.97), (0.5, 0.65), (0.7, 0.97)),
    ]


def _cloud(rng: np.random.Generator) -> list[F64]:
    bumps = [
        _circle(x, y, r, 150, 390)
        for x, y, r in ((0.3, 0.55, 0.18), (0.52, 0.42, 0.22), (0.74, 0.55, 0.17))
    ]
    return [*bumps, _poly((0.13, 0.62), (0.9, 0.62))]


def _umbrella(rng: np.random.Generator) -> list[F64]:
    return [
        np.concatenate([_circle(0.5, 0.5, 0.45, 180, 360), _poly((0.95, 0.5), (0.05, 0.5))]),
        np.concatenate([_poly((0.5, 0.5), (0.5, 0.85)), _circle(0.6, 0.85, 0.1, 180, 0)]),
    ]


DOODLE_PATHS: dict[str, Callable[[np.random.Generator], list[F64]]] = {
    "smiley": _smiley,
    "house": _house,
    "tree": _tree,
    "star": _star,
    "sun": _sun,
    "flower": _flower,
    "fish": _fish,
    "cat": _cat,
    "car": _car,
    "stick figure": _stick_figure,
    "cloud": _cloud,
    "umbrella": _umbrella,
}


def doodle_paths(name: str, rng: np.random.Generator) -> list[F64]:
    """A drawing of a thing as pen paths in the unit box ([0, 1], y down)."""
    return DOODLE_PATHS[name](rng)


def _hand(path: F64, rng: np.random.Generator, amount: float) -> F64:
    """A path as a hand draws it: displaced by a few sines of its arc length."""
    seg = np.hypot(*np.diff(path, axis=0).T)
    s = np.concatenate([[0], np.cumsum(seg)])
    n = max(8, int(s[-1] / 0.01))
    t = np.linspace(0, s[-1], n)
    fine = np.stack([np.interp(t, s, path[:, 0]), np.interp(t, s, path[:, 1])], 1)
    for _ in range(3):
        f, ph = rng.uniform(1, 6), rng.uniform(0, 2 * math.pi, 2)
        fine += (
            amount
            * rng.uniform(0.3, 1.0)
            * np.stack(
                [np.sin(2 * math.pi * f * t + ph[0]), np.sin(2 * math.pi * f * t + ph[1])], 1
            )
        )
    return fine


def rasterise(paths: list[F64], h: int, w: int, width: float) -> F32:
    """Pen coverage (h, w) of paths in pixels: the distance of each point of a 3× grid to
    the nearest point of the paths (sampled every third of a pixel, scipy's exact Euclidean
    distance transform), 1 within ``width / 2`` with a one-pixel ramp, averaged back down."""
    from scipy.ndimage import distance_transform_edt

    f = 3
    centre = np.ones((h * f, w * f), bool)
    for q in paths:
        seg = np.hypot(*np.diff(q, axis=0).T)
        s = np.concatenate([[0], np.cumsum(seg)])
        t = np.linspace(0, s[-1], max(2, int(s[-1] * f * 3)))
        xs = np.clip((np.interp(t, s, q[:, 0]) * f).astype(int), 0, w * f - 1)
        ys = np.clip((np.interp(t, s, q[:, 1]) * f).astype(int), 0, h * f - 1)
        centre[ys, xs] = False
    d = distance_transform_edt(centre) / f
    fine = np.clip(width / 2 + 0.5 - d, 0, 1)
    cover: F32 = fine.reshape(h, f, w, f).mean(axis=(1, 3)).astype(np.float32)
    return cover


def doodle(rng: np.random.Generator, i: int) -> tuple[Image.Image, str]:
    name = DOODLES[i % len(DOODLES)]
    side = _side(rng)
    aspect = rng.uniform(0.75, 1.0)
    w, h = (side, max(SIDE_RANGE[0], round(side * aspect)))
    if rng.random() < 0.5:
        w, h = h, w
    fill = rng.uniform(0.55, 0.85)
    box = min(w, h) * fill
    x0, y0 = (
        (w - box) / 2 + rng.uniform(-0.05, 0.05) * w,
        (h - box) / 2 + rng.uniform(-0.05, 0.05) * h,
    )
    paths = [_hand(q, rng, 0.012) * box + (x0, y0) for q in doodle_paths(name, rng)]
    page = _on_paper(rasterise(paths, h, w, max(1.0, box * rng.uniform(0.025, 0.06))), rng)
    return page, name.replace(" ", "_")


DOODLES = tuple(DOODLE_PATHS)

MAKERS: dict[str, Callable[[np.random.Generator, int], tuple[Image.Image, str]]] = {
    "photos": photo,
    "icons": icon,
    "symbols": symbol,
    "doodles": doodle,
    "letters": letter,
}


def write(root: Path, *, per_kind: int = 100, seed: int = 0) -> dict[str, list[Path]]:
    """``per_kind`` images of each kind written as a user's folder would hold them:
    ``<root>/<kind>/<n>-<what>.<jpg|png>``, RGB. Returns the files of each kind, in order."""
    out: dict[str, list[Path]] = {}
    for k, kind in enumerate(KINDS):
        rng = np.random.default_rng([seed, k])
        folder = Path(root) / kind
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for i in range(per_kind):
            img, what = MAKERS[kind](rng, i)
            ext, kw = _save_kw(rng)
            path = folder / f"{i:04d}-{what}.{ext}"
            img.save(path, format="JPEG" if ext == "jpg" else "PNG", **kw)
            files.append(path)
        out[kind] = files
    return out


def shows(path: Path) -> str:
    """What a file :func:`write` wrote shows, from its name: ``symbols/0007-u00a9.png`` ->
    ``©``, ``doodles/0003-stick_figure.jpg`` -> ``stick_figure``."""
    path = Path(path)
    what = path.stem.split("-", 1)[1]
    return chr(int(what[1:], 16)) if path.parent.name == "symbols" else what
