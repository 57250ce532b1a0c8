"""report.html in a real browser: headless Chromium loads it without console errors and draws the plots.

Needs the Debian packages `chromium` and `chromium-driver` and the `selenium` package; skipped
with the reason otherwise.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"
PIPELINE = "prune{sparsity=0.5},cluster{k=16,granularity=stream}"
WIDTH = 1400


def _browser_paths() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    paths = _browser_paths()
    if paths is None:
        pytest.skip("chromium and chromedriver not installed (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = paths[0]
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}", f"--window-size={WIDTH},1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(paths[1]), options=opts)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert EXAMPLE.is_file(), "the bundled example model is part of hwopt (tools/make_example_model.py)"
    from hwopt import compile as compile_model

    out = tmp_path_factory.mktemp("html")
    compile_model(EXAMPLE, "ethos-u55-128", out, pipeline=PIPELINE)
    return out / "report.html"


def _colours(png: Path) -> tuple[tuple[int, int], int, float]:
    """(height, width), distinct colours and the share of near-white pixels of a PNG."""
    from matplotlib.image import imread

    img = imread(png)
    rgb = (np.asarray(img)[..., :3] * 255).round().astype(np.uint8)
    flat = rgb.reshape(-1, 3)
    packed = (flat[:, 0].astype(np.uint32) << 16) | (flat[:, 1].astype(np.uint32) << 8) | flat[:, 2]
    white = float(np.mean(flat.min(axis=1) > 245))
    return rgb.shape[:2], int(np.unique(packed).size), white


def test_report_renders_without_console_errors(driver, report, tmp_path) -> None:
    driver.get(report.as_uri())
    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert severe == []
    assert driver.title.startswith("hwopt compile:")
    svgs = driver.execute_script(
        "return Array.from(document.querySelectorAll('figure svg')).map(s => {"
        "const r = s.getBoundingClientRect(); return [r.width, r.height]; });")
    assert len(svgs) == 3  # cycles, weight density before/after, SRAM
    assert all(w > 300 and h > 150 for w, h in svgs), svgs
    headings = driver.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent);")
    assert headings == ["Cycles per layer", "Weight values before and after the pipeline", "SRAM in use", "Layers",
                        "Findings"]
    # The page fits the window: no table or figure forces a horizontal scroll bar.
    assert driver.execute_script("return document.documentElement.scrollWidth") <= WIDTH
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(height + 150, 6000))
    png = tmp_path / "report.png"
    assert driver.save_screenshot(str(png))
    assert png.stat().st_size > 50_000
    (h, w), colours, white = _colours(png)
    assert h > 1500 and w >= 1000
    assert colours > 200  # text, bars, histograms in several colours: not a blank or error page
    assert 0.5 < white < 0.99


def test_report_without_pipeline_has_no_before_after(driver, tmp_path) -> None:
    assert EXAMPLE.is_file(), "the bundled example model is part of hwopt (tools/make_example_model.py)"
    from hwopt import compile as compile_model

    compile_model(EXAMPLE, "ethos-u85-256", tmp_path)
    driver.get((tmp_path / "report.html").as_uri())
    assert [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"] == []
    headings = driver.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent);")
    assert "Weight values" in headings and "Weight values before and after the pipeline" not in headings
