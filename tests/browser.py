"""A headless Chromium for the tests that walk a user's pages: Debian's `chromium` (`make
chromium`) driven by Playwright from its PyPI wheel, which brings the driver only; no
browser is ever downloaded. Screenshots go where the test says and, with
VISTA_UPDATE_SCREENSHOTS=1, also to docs/screenshots/, which the README links."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from vista.core.config import PROJECT_ROOT

COMMITTED = PROJECT_ROOT / "docs" / "screenshots"
# every host name unresolvable: a page that needs another host fails to load it
NO_NAMES = "--host-resolver-rules=MAP * ~NOTFOUND"


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no headless browser (make chromium installs Debian's)")
    return found


@contextmanager
def chromium(*args: str) -> Iterator:
    """A Playwright Browser on Debian's Chromium; ``args`` go on its command line."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu", *args]
        )
        try:
            yield browser
        finally:
            browser.close()


def drawn(png: Path) -> bool:
    """A drawn page (text, icons, lines: many colours), not a blank or an error page."""
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    return len(np.unique(pixels, axis=0)) > 20


def screenshot(target, folder: Path, name: str, **options) -> Path:
    """``target`` (a Page or a Locator) as folder/name; copied to docs/screenshots/ when
    VISTA_UPDATE_SCREENSHOTS=1. Asserts the picture is a drawn page."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    target.screenshot(path=str(path), **options)
    assert drawn(path), path
    if os.environ.get("VISTA_UPDATE_SCREENSHOTS") == "1":
        COMMITTED.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, COMMITTED / name)
    return path
