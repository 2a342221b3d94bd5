"""End to end: the browser demo page in headless Chromium against a real server.

Chromium's fake microphone plays dev_008 (a name and a phone number); the page
streams it over /v1/stream, and the live transcript must show the values masked
and never in the clear. Needs Debian's ``chromium`` and ``chromium-driver``
(scripts/test.sh installs them): without them this test fails, it does not skip.
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest

from streamserver import audio as audio_mod
from tests.conftest import FIXTURES

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
LEAKS = ("linda", "0175")  # from dev_008: "My name is Linda Smith and my number is 830-555-0175."
WAIT_S = 60


def fake_mic_wav(path: Path) -> Path:
    """dev_008 as 16-bit PCM mono, with 1 s of silence before and 3 s after."""
    samples, rate = audio_mod.read_wav(FIXTURES / "dev_008.wav")
    mono = samples[:, 0]
    pcm = np.concatenate([np.zeros(rate, np.int16), mono, np.zeros(3 * rate, np.int16)])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


def chrome(fake_audio: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not Path(CHROMIUM).exists() or not Path(driver_path).exists():
        pytest.fail("headless Chromium is required: apt-get install chromium chromium-driver "
                    "(scripts/test.sh does this)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={fake_audio}%noloop",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1200,1100",
                "--mute-audio"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(executable_path=driver_path))


def test_demo_routes_serve_the_page(server) -> None:
    with urllib.request.urlopen(server.http + "/") as r:  # follows the redirect
        assert r.status == 200 and r.url.endswith("/demo/")
        html = r.read().decode()
        assert "Content-Security-Policy" in r.headers
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "demo.js" in refs and "demo.css" in refs
    # No CDN: everything is loaded from this server (data: URIs aside).
    assert all(ref.startswith("data:") or (":" not in ref and not ref.startswith("//"))
               for ref in refs), refs
    for name, ctype in (("demo.js", "javascript"), ("capture-worklet.js", "javascript"),
                        ("demo.css", "text/css"), ("samples/dev_008.wav", "audio/")):
        with urllib.request.urlopen(f"{server.http}/demo/{name}") as r:
            assert r.status == 200 and ctype in r.headers["content-type"], name
            assert r.read()


def test_demo_page_redacts_microphone_audio(server, tmp_path: Path) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chrome(fake_mic_wav(tmp_path / "dev_008_mic.wav"))
    shot = tmp_path / "demo_page.png"
    leaked: list[str] = []

    def page_text() -> str:
        text = driver.find_element(By.TAG_NAME, "body").text
        leaked.extend(w for w in LEAKS if w in text.lower())
        return text

    def masked_final(_: object) -> bool:
        page_text()  # check every poll: partials must not leak either
        return bool(driver.find_elements(By.CSS_SELECTOR, "#finals .final mark.redacted"))

    try:
        driver.get(server.http + "/")
        assert driver.current_url.endswith("/demo/")
        driver.find_element(By.ID, "source-mic").click()
        driver.find_element(By.ID, "start").click()
        t0 = time.monotonic()
        try:
            WebDriverWait(driver, WAIT_S, poll_frequency=0.25).until(masked_final)
        except TimeoutException:
            status = driver.find_element(By.ID, "status").text
            logs = driver.get_log("browser")
            pytest.fail(f"no masked final transcript within {WAIT_S} s; status: {status!r}; "
                        f"browser log: {logs}")
        status = driver.find_element(By.ID, "status").text
        assert "Connected" in status and "session" in status, status
        # Let the whole clip (1 s lead + 8.5 s) go out, then stop: the server drains and ends.
        WebDriverWait(driver, WAIT_S, poll_frequency=0.25).until(
            lambda d: page_text() and float(d.find_element(By.ID, "sent").text) >= 9.5
        )
        driver.find_element(By.ID, "stop").click()
        WebDriverWait(driver, 30, poll_frequency=0.25).until(
            lambda d: page_text() and "ended" in d.find_element(By.ID, "status").text
        )
        elapsed = time.monotonic() - t0
        text = page_text()
        marks = driver.find_elements(By.CSS_SELECTOR, "#finals mark.redacted")
        entities = {m.get_attribute("data-entity") for m in marks}
        assert "PERSON" in entities or "PHONE_NUMBER" in entities, entities
        assert any("#" in m.text or "[" in m.text for m in marks)
        assert not leaked and not any(w in text.lower() for w in LEAKS), "PII in the page text"
        assert not driver.find_element(By.ID, "start").get_attribute("disabled")
        assert driver.find_elements(By.CSS_SELECTOR, "#redactions li")
        assert float(driver.find_element(By.ID, "received").text) >= 9.5  # all of it came back
        print(f"\ndemo page: masked final after ~{elapsed:.1f} s; "
              f"status {driver.find_element(By.ID, 'status').text!r}")
    finally:
        driver.save_screenshot(str(shot))
        print(f"demo page screenshot: {shot}")
        driver.quit()
