"""The web app in a real browser (headless Chromium driven by selenium): load the page, upload
the example photo, run an edit and see the result image appear.

Chromium and its driver are Debian's `chromium` and `chromium-driver`; the set-up installs them
with apt-get when they are missing and it may (root, apt-get present), and skips with the reason
otherwise. Run with `make test-browser` (`.ci/run` does). `APP_SCREENSHOT=docs/app.png` also keeps
a screenshot of the page after the edit (the README's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from demo_world.examples import EXAMPLES_DIR

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")
# Without the background-networking switches Chromium waits on services a closed network lacks.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1100",
]


def ensure_chromium() -> None:
    """Chromium and chromedriver at their Debian paths, installed when missing and possible."""
    if CHROMIUM.is_file() and DRIVER.is_file():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(
            "headless Chromium is not installed and apt-get cannot install it here (not root)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:  # a stale package list: refresh it once
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.skip("apt-get install chromium chromium-driver did not finish within 15 minutes")
    if done.returncode != 0 or not (CHROMIUM.is_file() and DRIVER.is_file()):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"apt-get install chromium chromium-driver failed: {tail[0]}")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium")
    ensure_chromium()
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=str(DRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_the_page_edits_the_uploaded_example(browser, app_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, log = app_server
    browser.get(url)
    wait = WebDriverWait(browser, 120)
    upload = wait.until(
        ready.presence_of_element_located((By.CSS_SELECTOR, "#photo input[type=file]"))
    )
    upload.send_keys(str(EXAMPLES_DIR / "red_circle.png"))
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#photo img")))
    wait.until(lambda d: "photo ready" in _status(d))
    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, 300).until(lambda d: _status(d).startswith(("done", "error")))
    status = _status(browser)
    assert status.startswith("done"), f"{status}\n{log.read_text()[-2000:]}"
    image = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#result img")))
    assert image.get_attribute("src") and image.size["width"] > 0
    assert browser.execute_script("return arguments[0].naturalWidth", image) > 0
    target = os.environ.get("APP_SCREENSHOT")
    if target:  # the whole page: the window as tall as the document
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(int(height) + 140, 2400))
        browser.save_screenshot(target)


def _status(driver) -> str:
    from selenium.webdriver.common.by import By

    boxes = driver.find_elements(By.CSS_SELECTOR, "#status textarea")
    return boxes[0].get_attribute("value") if boxes else ""
