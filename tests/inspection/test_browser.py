"""The inspection page in a real headless browser (Debian's ``chromium``): its script runs without errors.

Without a browser the test skips, except where one is required: with ``TEXTSAE_REQUIRE_BROWSER=1``
or ``CI`` set (as ``.ci/run`` does) it fails, so CI can never pass without having run it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.inspection.test_inspection import hostile_inspection
from textsae.inspection import inspect_run, write_page

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _required() -> bool:
    flags = (os.environ.get("TEXTSAE_REQUIRE_BROWSER", ""), os.environ.get("CI", ""))
    return any(flag.strip().lower() not in ("", "0", "false", "no") for flag in flags)


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        message = (
            f"no headless browser found (looked for {', '.join(BROWSERS)} on PATH); install Debian's `chromium` package"
        )
        if _required():
            pytest.fail(message + " (required because CI or TEXTSAE_REQUIRE_BROWSER is set)")
        pytest.skip(message)
    return found


def render_in_browser(browser: str, page: Path, profile: Path, fragment: str = "") -> tuple[str, list[str]]:
    """The DOM after the page's script ran, and the browser's console messages (errors, CSP violations)."""
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.resolve().as_uri() + fragment,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


def _body_tag(dom: str) -> str:
    match = re.search(r"<body[^>]*>", dom)
    assert match, dom[:500]
    return match.group()


def _sections(dom: str) -> dict[str, bool]:
    """Latent id → whether the section is shown."""
    return {
        m.group(1): "hidden" not in m.group(0)
        for m in re.finditer(r'<section class="latent" id="(latent-\d+)"[^>]*>', dom)
    }


def test_page_of_a_run_renders_and_filters_without_errors(browser: str, tiny_run_dir: Path, tmp_path: Path) -> None:
    inspection = inspect_run(tiny_run_dir, top_terms=5, top_docs=2)
    page = tmp_path / "inspect.html"
    write_page(inspection, page)
    dom, console = render_in_browser(browser, page, tmp_path / "profile")
    assert console == []
    assert 'data-ready="1"' in _body_tag(dom)
    assert all(_sections(dom).values()) and len(_sections(dom)) == len(inspection.latents)

    term = inspection.latents[0].terms[0][0]
    expected = {
        f"latent-{latent.index}" for latent in inspection.latents if any(term in t.lower() for t, _ in latent.terms)
    }
    dom, console = render_in_browser(browser, page, tmp_path / "profile", f"#q={term}")
    assert console == []
    shown = {name for name, visible in _sections(dom).items() if visible}
    assert shown == expected and 0 < len(shown) <= len(inspection.latents)
    assert f'<span id="shown">{len(shown)}</span>' in dom


def test_hostile_text_never_runs(browser: str, tmp_path: Path) -> None:
    page = tmp_path / "hostile.html"
    write_page(hostile_inspection(tmp_path), page)
    dom, console = render_in_browser(browser, page, tmp_path / "profile")
    assert console == []  # an injected inline script would also trip the CSP and log here
    body = _body_tag(dom)
    assert 'data-ready="1"' in body and "data-pwned" not in body
