"""report.html in a real browser: Debian's headless Chromium, driven by Selenium through Debian's ChromeDriver.

For each job kind's page (and the real smoke job's): every plot is displayed,
decoded and visibly drawn (pixels of an element screenshot), the page asked
for nothing over the network (Chrome's own network log, read through
ChromeDriver), and the browser logged no blocked load.  Chromium and ChromeDriver
come from ``.ci/install-browser`` (run by ``make test``; run here too when they
are missing); the test skips, saying why, only when they cannot be installed.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from _report_runs import HOSTILE_DETAIL, KINDS, add_checks, write_run
from rapidseval.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = Path(__file__).resolve().parent.parent / ".ci" / "install-browser"
JOBS = Path(__file__).resolve().parent.parent / "jobs"

#: the only URL schemes a self-contained page may load
LOCAL_SCHEMES = ("file:", "data:", "about:")
#: documents of the browser itself, not of the page under test
BROWSER_UI = ("chrome:", "chrome-untrusted:", "devtools:")
#: a drawn plot: pixels differ from the background (std over RGB, on 0-1) and cover some of the image
MIN_PIXEL_STD = 0.05
MIN_INK_FRACTION = 0.01


def _browser_or_skip() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    out = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=1200)
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"Debian chromium + chromium-driver not installed and could not be: {out.stderr.strip() or out.stdout.strip()}")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                "--window-size=1400,1200",
                # belt and braces: were the page to ask for anything, it could not leave this machine
                "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=str(CHROMEDRIVER)))
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    root = tmp_path_factory.mktemp("pages")
    out = {kind: write_report(write_run(root, kind)) for kind in KINDS}
    out["checks"] = write_report(add_checks(write_run(root / "with-checks", "old")))  # few plots: a quick page
    import rapidseval

    res = rapidseval.run(JOBS / "smoke.yaml", backend="cpu", out=root / "smoke-run",
                         overrides={"data.synthetic.rows_per_month": 4000, "data.synthetic.cache_dir": str(root / "cache"),
                                    "model.params.n_estimators": 5, "cluster.kind": "threads"})
    out["smoke"] = res.report_path
    return out


def _requests(drv) -> list[str]:
    """URLs requested since the last call, less those of the browser's own pages (a chrome:// new tab)."""
    urls = []
    for entry in drv.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            if not msg["params"].get("documentURL", "").startswith(BROWSER_UI):
                urls.append(msg["params"]["request"]["url"])
        elif msg["method"] == "Network.webSocketCreated":
            urls.append(msg["params"]["url"])
    return urls


def _ink(png: bytes) -> tuple[float, float]:
    import matplotlib.image as mpimg

    rgb = mpimg.imread(io.BytesIO(png), format="png")[..., :3]
    return float(rgb.std()), float((rgb.min(axis=2) < 0.9).mean())


@pytest.mark.parametrize("kind", [*KINDS, "smoke"])
def test_page_in_chromium(driver, pages, kind):
    from selenium.webdriver.common.by import By

    path = pages[kind]
    html = path.read_text()
    expected = re.findall(r"<figure class='plot' id='(plot-[^']+)'>", html)
    assert len(expected) >= 5

    driver.get_log("performance"), driver.get_log("browser")  # drain what earlier pages left
    driver.get(path.as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    assert driver.title.startswith("rapidseval: ")

    figures = driver.find_elements(By.CSS_SELECTOR, "figure.plot")
    assert [f.get_attribute("id") for f in figures] == expected
    for fig in figures:
        img = fig.find_element(By.TAG_NAME, "img")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", img)
        assert img.is_displayed(), fig.get_attribute("id")
        decoded = driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
        assert decoded and decoded > 300, (fig.get_attribute("id"), decoded)
        assert img.size["width"] > 300 and img.size["height"] > 150, (fig.get_attribute("id"), img.size)
        std, ink = _ink(img.screenshot_as_png)
        assert std > MIN_PIXEL_STD and ink > MIN_INK_FRACTION, (fig.get_attribute("id"), std, ink)

    urls = _requests(driver)
    assert any(u.startswith("file:") for u in urls), "the network log saw not even the page itself"
    remote = [u[:100] for u in urls if not u.startswith(LOCAL_SCHEMES)]
    assert remote == [], f"the page made network requests: {remote}"
    blocked = [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert blocked == [], blocked


def test_checks_section_in_chromium(driver, pages):
    """The Checks and Slices sections are shown, a failed result stands out in red, and a detail
    holding markup (from a user's YAML) is text on the page, never markup."""
    from selenium.webdriver.common.by import By

    driver.get_log("performance"), driver.get_log("browser")
    driver.get(pages["checks"].as_uri())
    checks = driver.find_element(By.ID, "checks")
    slices = driver.find_element(By.ID, "slices")
    assert checks.is_displayed() and slices.is_displayed()
    assert checks.find_element(By.TAG_NAME, "h2").text == "Checks"
    assert [h.get_attribute("id") for h in checks.find_elements(By.TAG_NAME, "h3")] == [
        "checks-data", "checks-model", "checks-infrastructure", "checks-monitoring", "checks-assertions"]
    fail = checks.find_element(By.CSS_SELECTOR, "td.fail")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", fail)
    assert fail.is_displayed() and fail.text == "fail"
    assert fail.value_of_css_property("color") in ("rgba(187, 0, 0, 1)", "rgb(187, 0, 0)")
    assert HOSTILE_DETAIL in checks.text  # shown as the text it is
    assert driver.execute_script("return document.scripts.length") == 0
    assert "Staten Island" in slices.text and "Below the minimum support" in slices.text
    urls = _requests(driver)
    assert [u[:100] for u in urls if not u.startswith(LOCAL_SCHEMES)] == []
    assert [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []
