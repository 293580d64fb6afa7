"""The page in a real browser: headless Chromium from Debian (chromium, chromium-driver), driven by Selenium.

A daemon as on a Pi reached from a laptop (host 0.0.0.0 and a token), a matrix small enough for quick
pixel checks, its `--record`; the page opened with ?token=, as a person would, passes the token on to
/live, /status and the instruction stream. No browser is downloaded: tests skip without Debian's.

`python tests/test_browser.py docs/web-dome.png` takes the documentation's screenshot: the page on the
default dome with `skyscreen-hw demo spiral` running.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "b-r-o-w-s-e-r"
HEIGHT, WIDTH = 48, 64  # the matrix: LED (row, col) shows frame pixel (row, col)
LEDS = HEIGHT * WIDTH


def _browser(width: int = 1280, height: int = 1000) -> Any:  # a selenium WebDriver
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("needs Debian's chromium and chromium-driver (./dev.sh test installs them)")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="skyscreen-chromium-")
    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.profile_dir = profile
    return driver


@pytest.fixture
def browser() -> Iterator:
    driver = _browser()
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(driver.profile_dir, ignore_errors=True)


def config(name: str, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        outputs = []
        [frame]
        name = "{name}"
        width = {WIDTH}
        height = {HEIGHT}
        [layout]
        type = "matrix"
        serpentine = true
        [color]
        gamma = 1.0
        [display]
        fps = 30
        [websocket]
        host = "0.0.0.0"
        port = 0
        token = "{TOKEN}"
        """
    ) + textwrap.dedent(extra)


class Display:
    """A daemon, its recording and the page's URL."""

    def __init__(self, daemon, record: Path, leds: int = LEDS) -> None:
        self.daemon = daemon
        self.record = record
        self.leds = leds
        daemon.wait_for_log("running:")
        port = re.search(r"ws://[\w.\[\]:-]+:(\d+)", daemon.log).group(1)
        self.base = f"http://127.0.0.1:{port}"
        self.page = f"{self.base}/?token={TOKEN}"

    def last_frame(self) -> np.ndarray:
        size = self.leds * 3
        with self.record.open("rb") as f:
            f.seek(0, os.SEEK_END)
            frames = f.tell() // size
            if not frames:
                return np.zeros((self.leds, 3), np.uint8)
            f.seek((frames - 1) * size)
            return np.frombuffer(f.read(size), np.uint8).reshape(-1, 3).copy()


@pytest.fixture
def display(display_name: str, daemon_factory, tmp_path: Path) -> Display:
    record = tmp_path / "browser.rgb"
    return Display(daemon_factory(config(display_name), "--record", str(record)), record)


def write_picture(name: str, picture: np.ndarray) -> None:
    """A writer in a subprocess puts ``picture`` into the shared frame once and waits for the daemon to take it."""
    data = Path(tempfile.mkstemp(suffix=".npy")[1])
    try:
        np.save(data, picture)
        code = (
            "import sys, numpy as np\n"
            "from skyscreen_hw.sources.shared_frame import FrameWriter\n"
            "pic = np.load(sys.argv[2])\n"
            "with FrameWriter(sys.argv[1], pic.shape[0], pic.shape[1]) as w:\n"
            "    w.frame[:] = pic\n"
            "    sys.exit(0 if w.flush(5.0) else 3)\n"
        )
        subprocess.run([sys.executable, "-c", code, name, str(data)], check=True, timeout=30)
    finally:
        data.unlink(missing_ok=True)


def open_page(browser, url: str) -> None:
    browser.get(url)
    wait_for(browser, "return window.skyscreen && window.skyscreen.framesShown > 0", "the page never drew a frame")


def wait_for(browser, script: str, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} (console: {console(browser)})")


def console(browser) -> list[dict]:
    return browser.get_log("browser")


PAGE_PIXELS = """
const s = window.skyscreen, n = s.layout.count;
const img = document.getElementById("view").getContext("2d").getImageData(0, 0, s.size, s.size).data;
const out = [];
for (let i = 0; i < n; i++) {
  const [x, y] = s.pixelOf(i), owner = s.ledAt(x, y), p = 4 * (y * s.size + x);
  out.push([owner, img[p], img[p + 1], img[p + 2]]);
}
return out;
"""


def page_leds(browser) -> tuple[np.ndarray, np.ndarray]:
    """(the LED drawn at each LED's own pixel on the page's canvas, that pixel's RGB)."""
    rows = np.array(browser.execute_script(PAGE_PIXELS), dtype=np.int64)
    return rows[:, 0], rows[:, 1:].astype(np.uint8)


def wait_page_matches_record(browser, display: Display, timeout: float = 15.0) -> np.ndarray:
    """Until the page shows the recording's last frame at every LED; returns that frame."""
    deadline = time.monotonic() + timeout
    while True:
        recorded = display.last_frame()
        owners, rgb = page_leds(browser)
        if np.array_equal(rgb, recorded[owners]):
            return recorded
        if time.monotonic() > deadline:
            bad = np.flatnonzero((rgb != recorded[owners]).any(axis=1))
            led = owners[bad[0]]
            raise AssertionError(f"{bad.size} LEDs differ, e.g. LED {led}: page {rgb[bad[0]]}, record {recorded[led]}")
        time.sleep(0.2)


# -- the tests -----------------------------------------------------------------------------------------------


def test_the_page_loads_without_console_errors_and_shows_the_status(browser, display: Display) -> None:
    open_page(browser, display.page)
    text = wait_for(
        browser,
        "const t = document.getElementById('status').textContent; return t.includes('fps') && t",
        "the status panel never filled",
    )
    assert "LEDs (matrix)" in text and "live view" in text
    assert browser.execute_script("return window.skyscreen.layout.count") == LEDS
    assert [e for e in console(browser) if e["level"] == "SEVERE"] == []


def test_the_canvas_shows_at_every_led_what_the_recording_got(browser, display: Display, display_name: str) -> None:
    rng = np.random.default_rng(7)
    picture = rng.integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
    write_picture(display_name, picture)
    open_page(browser, display.page)
    owners, _ = page_leds(browser)
    assert np.array_equal(owners, np.arange(LEDS))  # a matrix: every LED is visible at its own position
    recorded = wait_page_matches_record(browser, display)
    # the serpentine wiring: LED 64 (row 1) shows frame pixel (1, 63)
    assert np.array_equal(recorded[WIDTH], picture[1, WIDTH - 1])
    assert [e for e in console(browser) if e["level"] == "SEVERE"] == []

    picture = 255 - picture  # a second picture replaces the first on the page
    write_picture(display_name, picture)
    recorded = wait_page_matches_record(browser, display)
    assert np.array_equal(recorded[0], picture[0, 0])


def _canvas_pixels() -> np.ndarray:
    """For each LED, the instruction-canvas pixel (y * 256 + x) it samples."""
    from skyscreen_hw import config as configuration
    from skyscreen_hw import layouts
    from skyscreen_hw.compositor import canvas_samples
    from skyscreen_hw.sources.canvas import Canvas

    cfg = configuration.parse(
        {"frame": {"width": WIDTH, "height": HEIGHT}, "layout": {"type": "matrix", "serpentine": True}}, "(test)"
    )
    return canvas_samples(layouts.build(cfg), Canvas.SIZE)[0]


def _cells(pixels: np.ndarray) -> np.ndarray:
    """Canvas pixels (y * 256 + x) -> their cells (y * 32 + x)."""
    return (pixels // 256 // 8) * 32 + (pixels % 256) // 8


def click_cell(browser, x: int, y: int) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    cells = browser.find_element(By.ID, "cells")
    size = cells.size["width"]
    step = size / 32
    # offsets from the element's centre (Selenium 4)
    ActionChains(browser).move_to_element_with_offset(
        cells, int((x + 0.5) * step - size / 2), int((y + 0.5) * step - size / 2)
    ).click().perform()


def wait_record(display: Display, check, what: str, timeout: float = 10.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while True:
        frame = display.last_frame()
        if check(frame):
            return frame
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


def test_drawing_on_the_page_shows_in_the_recording_and_clear_removes_it(browser, display: Display) -> None:
    from selenium.webdriver.common.by import By

    from skyscreen_hw.sources.font import glyph_bitmaps

    pixels = _canvas_pixels()
    cell = _cells(pixels)
    open_page(browser, display.page)
    browser.execute_script("document.getElementById('color').value = '#00ff00'")
    click_cell(browser, 10, 12)
    green = cell == 12 * 32 + 10
    assert green.any()
    wait_record(display, lambda f: (f[green] == (0, 255, 0)).all(), "the clicked cell never turned green")

    browser.execute_script("document.getElementById('color').value = '#ff0000'")
    browser.find_element(By.ID, "text-x").clear()
    browser.find_element(By.ID, "text-x").send_keys("3")
    browser.find_element(By.ID, "text-y").clear()
    browser.find_element(By.ID, "text-y").send_keys("20")
    browser.find_element(By.ID, "text").send_keys("HH")
    browser.find_element(By.ID, "write").click()
    glyphs = glyph_bitmaps(8)
    text = (cell == 20 * 32 + 3) | (cell == 20 * 32 + 4)
    lit = np.zeros(LEDS, bool)  # the LEDs that sample a set pixel of the glyphs
    for ch, x in (("H", 3), ("H", 4)):
        mine = np.flatnonzero(cell == 20 * 32 + x)
        lit[mine] = glyphs[ord(ch)][(pixels[mine] // 256) % 8, (pixels[mine] % 256) % 8]
    assert lit.sum() >= 2
    expected = np.where(lit[text, None], np.array((255, 0, 0), np.uint8), 0)
    wait_record(display, lambda f: np.array_equal(f[text], expected), "the text never showed")

    browser.find_element(By.ID, "clear").click()  # quit: this page's drawing goes, the frame shows through
    wait_record(display, lambda f: not f[green | text].any(), "clear did not remove the drawing")
    click_cell(browser, 11, 12)  # and the page draws again on a new connection
    again = cell == 12 * 32 + 11
    wait_record(display, lambda f: (f[again] == (255, 0, 0)).all(), "drawing after clear did not show")
    assert [e for e in console(browser) if e["level"] == "SEVERE"] == []


def test_hover_names_the_led_its_frame_pixel_output_and_color(browser, display: Display, display_name: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    picture = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    picture[1, WIDTH - 1] = (10, 20, 30)  # LED 64 on the serpentine matrix
    write_picture(display_name, picture)
    open_page(browser, display.page)
    wait_page_matches_record(browser, display)
    view = browser.find_element(By.ID, "view")
    x, y = browser.execute_script("return window.skyscreen.pixelOf(64)")
    k = browser.execute_script("return window.skyscreen.size") / view.size["width"]
    ActionChains(browser).move_to_element_with_offset(
        view, int(x / k - view.size["width"] / 2), int(y / k - view.size["height"] / 2)
    ).perform()
    tip = wait_for(browser, "const t = document.getElementById('tip'); return !t.hidden && t.textContent", "no tip")
    assert "LED 64\nframe pixel row 1, column 63\n" in tip
    assert "color 10, 20, 30  #0a141e" in tip
    browser.find_element(By.ID, "show-wiring").click()  # the wiring path draws on its own layer
    lit = browser.execute_script(
        "const c = document.getElementById('wiring');"
        "return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v)"
    )
    assert lit


def test_a_page_without_the_token_gets_401(browser, display: Display) -> None:
    browser.get(display.base + "/")
    assert "a valid token is required" in browser.find_element("tag name", "body").text


# -- the documentation's screenshot ---------------------------------------------------------------------------


def dome_screenshot(path: Path, seconds: float = 4.0) -> None:
    """The page on the default 360 x 288 dome with the spiral demo running, saved as a PNG at ``path``."""
    here = Path(__file__).resolve().parent.parent
    name = f"skyshot-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "dome.toml"
        cfg.write_text(f'outputs = []\n[frame]\nname = "{name}"\n[layout]\nserpentine = true\n[websocket]\nport = 0\n')
        log = Path(tmp) / "daemon.log"
        env = {**os.environ, "PYTHONPATH": str(here)}
        with log.open("wb") as out:
            daemon = subprocess.Popen([sys.executable, "-m", "skyscreen_hw", "--config", str(cfg)], stderr=out, env=env)
        demo = None
        driver = None
        try:
            deadline = time.monotonic() + 30
            while "running:" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            port = re.search(r"ws://[\w.]+:(\d+)", log.read_text()).group(1)
            demo = subprocess.Popen(
                [sys.executable, "-m", "skyscreen_hw", "--config", str(cfg), "demo", "spiral", "--fps", "30"], env=env
            )
            driver = _browser(1400, 1160)
            driver.get(f"http://127.0.0.1:{port}/")
            wait_for(driver, "return window.skyscreen && window.skyscreen.framesShown > 0", "no frame", 30)
            driver.execute_script("document.getElementById('color').value = '#ffff00'")
            driver.find_element("id", "text-x").clear()
            driver.find_element("id", "text-x").send_keys("10")
            driver.find_element("id", "text-y").clear()
            driver.find_element("id", "text-y").send_keys("9")
            driver.find_element("id", "text").send_keys("SKYSCREEN")
            driver.find_element("id", "write").click()
            driver.execute_script("document.getElementById('show-wiring').blur(); window.scrollTo(0, 0)")
            time.sleep(seconds)
            driver.save_screenshot(str(path))
        finally:
            if driver is not None:
                driver.quit()
                shutil.rmtree(driver.profile_dir, ignore_errors=True)
            for proc in (demo, daemon):
                if proc is not None:
                    proc.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(10)
            from conftest import remove_display

            remove_display(name)


def test_the_dome_page_shows_the_spiral(tmp_path: Path) -> None:
    shot = tmp_path / "dome.png"
    dome_screenshot(shot, seconds=1.0)
    assert shot.stat().st_size > 50_000  # a picture with the lit dome in it, not an empty page


if __name__ == "__main__":
    dome_screenshot(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/web-dome.png"))
