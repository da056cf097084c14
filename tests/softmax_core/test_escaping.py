"""softmax_core.escaping: user strings on a terminal and in markdown (issue 27, items 1-2).

The markdown tests render with markdown-it-py (CommonMark, the HTML the Prefect UI's
renderer would be asked to show) and look at what came out: no link but ours, no raw
HTML, every fence closed where we closed it.
"""

from __future__ import annotations

import os

import pytest
from markdown_it import MarkdownIt

from softmax_core.escaping import (
    markdown,
    markdown_block,
    markdown_code,
    markdown_link,
    printable,
    unambiguous,
)

HOSTILE = [
    "\x1b]0;PWNED\x07\x1b[2K\rerror: fake",
    "a\nerror: forged line",
    "tab\there",
    "del\x7f c1\x9b[31m",
    "bidi \u202eevil\u202c",
    "line\u2028sep",
    os.fsdecode(b"not-utf8-\xff\xfe.png"),
]

MD = MarkdownIt("commonmark", {"html": True}).enable("table")
MD.validateLink = lambda url: True  # type: ignore[method-assign]  # show every link, as a lax UI would


@pytest.mark.parametrize("text", HOSTILE)
def test_printable_leaves_no_control_character_and_is_idempotent(text: str) -> None:
    shown = printable(text)
    assert shown.isprintable(), repr(shown)
    assert printable(shown) == shown
    shown.encode("utf-8")  # no lone surrogates: it can be written anywhere


def test_printable_shows_what_was_there() -> None:
    assert printable("plain name.png") == "plain name.png"
    assert printable("ünïcödé 数字.png") == "ünïcödé 数字.png"
    assert printable("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert printable("\x1b[2K") == "\\x1b[2K"
    assert printable("\u202e") == "\\u202e"
    assert printable(os.fsdecode(b"x\xff.png")) == "x\\xff.png"  # the byte it was


def test_unambiguous_names_never_show_alike() -> None:
    """Rows are named by it: a name holding a newline and one holding a backslash and an
    ``n`` are two rows, and every printable name without a backslash is as it was."""
    names = ["a\nb.png", "a\\nb.png", "a\\\nb.png", "a\\\\nb.png", "a\\", "a", "x\x1b", "x\\x1b"]
    names.append(os.fsdecode(b"x\xff"))
    names.append("x\\xff")
    shown = [unambiguous(n) for n in names]
    assert len(set(shown)) == len(names), shown
    assert all(s.isprintable() for s in shown)
    assert unambiguous("a\nb.png") == "a\\nb.png" and unambiguous("a\\nb.png") == "a\\\\nb.png"
    assert unambiguous("plain ünï 数字.png") == "plain ünï 数字.png"
    for text in HOSTILE:
        assert printable(unambiguous(text)) == unambiguous(text)  # later layers keep it


@pytest.mark.parametrize(
    "text",
    [
        "[click](javascript:alert(1))",
        "<img src=x onerror=alert(1)>",
        "<javascript:alert(1)>",
        "x\n```\n[forged](javascript:alert(1))\n```",
        "# heading *em* _em_ | cell | `code`",
        "&lt;script&gt;",
        "\\[still text\\]",
    ],
)
def test_markdown_text_renders_as_exactly_that_text(text: str) -> None:
    html = MD.render(f"- {markdown(text)}\n\n| a |\n|---|\n| {markdown(text)} |\n")
    assert "<a " not in html and "<img" not in html and "<em>" not in html
    assert "<code>" not in html and "<h1>" not in html and "<script" not in html
    (inline,) = (t for t in MD.parse(f"{markdown(text)}\n") if t.type == "inline")
    assert [c.type for c in inline.children or []] == ["text"] * len(inline.children or [])
    assert "".join(c.content for c in inline.children or []) == printable(text)


@pytest.mark.parametrize("text", ["`", "a ``` b", " lead", "trail`", "```\n# x\n```", ""])
def test_markdown_code_holds_any_text_verbatim(text: str) -> None:
    inline = MD.parseInline(markdown_code(text))[0].children or []
    assert [t.type for t in inline] == ["code_inline"]
    assert inline[0].content == (printable(text) or " ")


def test_markdown_block_cannot_be_left() -> None:
    lines = ["ok", "```", "  ```", "````x", "[a](javascript:alert(1))", "line\n```\n# out"]
    tokens = MD.parse(markdown_block(lines) + "\nafter\n")
    assert tokens[0].type == "fence"
    assert tokens[0].content.splitlines() == [printable(line) for line in lines]
    assert "<a " not in MD.render(markdown_block(lines))


def test_markdown_link_only_to_http_or_file() -> None:
    html = MD.render(markdown_link("report of m:1", "https://s3.example/b/k.html?X-Sig=a(b)c d"))
    assert '<a href="https://s3.example/b/k.html?X-Sig=a(b)c%20d">report of m:1</a>' in html
    html = MD.render(markdown_link("r", "file:///tmp/my reg (1)/<x>.html"))
    assert '<a href="file:///tmp/my%20reg%20(1)/%3Cx%3E.html">r</a>' in html
    for evil in ("javascript:alert(1)", "data:text/html,<script>x</script>", "JaVaScRiPt:x"):
        html = MD.render(markdown_link("r", evil))
        assert "<a " not in html and "<script" not in html, html
