"""Headless Chromium with the network off: screenshots and the DOM after the page loaded."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT = 120  # seconds; the test machine is busy
OFFLINE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--proxy-server=127.0.0.1:9",  # nothing listens there: any request fails
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
# Appended to a copy of the page: after load, count the <img> that decoded.
IMAGE_PROBE = (
    "<script>addEventListener('load', () => {"
    " const all = Array.from(document.images);"
    " const ok = all.filter(i => i.complete && i.naturalWidth > 0).length;"
    " const d = document.createElement('div'); d.id = 'image-probe'; d.hidden = true;"
    " d.textContent = ok + '/' + all.length; document.body.appendChild(d); });</script>"
)


def browser() -> Path:
    """The Chromium binary: required (a missing browser fails the test, never skips it)."""
    if not CHROMIUM.is_file():
        found = shutil.which("chromium")
        if found is None:
            pytest.fail("headless Chromium is required: `apt-get install chromium`")
        return Path(found)
    return CHROMIUM


def _run(page: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [str(browser()), *OFFLINE_FLAGS, f"--user-data-dir={profile}", *flags, page.as_uri()],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 2000) -> Path:
    """Render ``page`` and save a ``width`` x ``height`` screenshot to ``png``."""
    _run(page, f"--screenshot={png}", f"--window-size={width},{height}")
    if not png.is_file():
        pytest.fail(f"Chromium wrote no screenshot to {png}")
    return png


def loaded_dom(page: Path) -> str:
    """The DOM of a copy of ``page`` with :data:`IMAGE_PROBE` run after load."""
    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", IMAGE_PROBE + "</body>"))
    return _run(
        probe,
        "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=5000",
        "--dump-dom",
    ).stdout
