#!/usr/bin/env python3
"""Drives the feu web page in headless Chromium through chromedriver (W3C WebDriver).

Usage: page_test.py URL PHOTO SCREENSHOT [THUMBNAIL_PX]
Opens the page at a phone's width, uploads PHOTO, types an instruction, moves
the alpha slider with the keyboard, submits the alpha strip, waits for the
slider's image and the grid, checks that every image loaded and that the
positive and negative corpus thumbnails appear (with THUMBNAIL_PX, as images
whose longer side is that many pixels: the server's thumbnails, not the corpus
files), and saves a screenshot.
When the daemon refuses photos (a protocol without the photo latent) it says
so and repeats the same steps with a seed. Exit 0 on success, 1 on failure,
77 when chromium or chromedriver is missing.
"""
import base64
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
KEY_RIGHT = "\ue014"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    def __init__(self):
        self.port = free_port()
        self.process = subprocess.Popen([DRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                if self.call("GET", "/status")["value"]["ready"]:
                    break
            except OSError:
                time.sleep(0.1)
        options = {"binary": CHROMIUM,
                   "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--window-size=412,2600"]}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = self.call("POST", "/session", caps)["value"]["sessionId"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"webdriver {method} {path}: {e.read().decode()[:500]}")

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)["value"]

    def find(self, css):
        found = self.s("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def type(self, css, text):
        self.s("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def js(self, script):
        return self.s("POST", "/execute/sync", {"script": script, "args": []})

    def close(self):
        try:
            self.s("DELETE", "")
        finally:
            self.process.terminate()
            self.process.wait(timeout=10)


STATE = """
const loaded = (img) => img.complete && img.naturalWidth > 0 && img.getAttribute('src');
const all = (css) => [...document.querySelectorAll(css)];
const error = document.getElementById('error');
return {
  error: error.hidden ? '' : error.textContent,
  current: loaded(document.getElementById('current-img')) ? true : false,
  alpha: document.getElementById('alpha-value').textContent,
  grid: all('#grid img').length,
  grid_loaded: all('#grid img').filter(loaded).length,
  positives: all('.thumbs.pos img').filter(loaded).length,
  negatives: all('.thumbs.neg img').filter(loaded).length,
  thumbnail_sides: all('.thumbs img').filter(loaded).map((img) => Math.max(img.naturalWidth, img.naturalHeight)),
  why: document.getElementById('why').textContent,
  status: document.getElementById('status').textContent,
};
"""


def wait_for(driver, done, seconds=60):
    deadline = time.time() + seconds
    while True:
        state = driver.js(STATE)
        if state["error"] or done(state) or time.time() > deadline:
            return state
        time.sleep(0.2)


def edit(driver, instruction):
    driver.type("#instruction", instruction)
    driver.click("#alpha")        # focus; the click itself may move it
    driver.type("#alpha", KEY_RIGHT + KEY_RIGHT)
    state = wait_for(driver, lambda s: s["current"] and s["positives"] > 0)
    if state["error"]:
        return state
    driver.click("#submit")
    return wait_for(driver, lambda s: s["grid"] > 0 and s["grid_loaded"] == s["grid"] and s["positives"] > 0
                    and s["negatives"] > 0)


def main():
    if not CHROMIUM or not DRIVER:
        print("chromium or chromedriver is not installed")
        return 77
    url, photo, screenshot = sys.argv[1:4]
    thumbnail_px = int(sys.argv[4]) if len(sys.argv) > 4 else None
    driver = Driver()
    try:
        driver.s("POST", "/url", {"url": url})
        driver.type("#photo", photo)
        state = edit(driver, "smiling")
        used = "photo"
        if "not a latent kind" in state["error"]:
            print(f"the daemon refuses photos ({state['error']}); the same steps with a seed")
            driver.click("input[name=source][value=seed]")
            driver.js("document.getElementById('instruction').value = '';"
                      "document.getElementById('error').hidden = true;")
            state = edit(driver, "smiling")
            used = "seed"
        with open(screenshot, "wb") as out:
            out.write(base64.b64decode(driver.s("GET", "/screenshot")))
        print(json.dumps({"source": used, **state}))
        ok = (not state["error"] and state["current"] and state["grid"] >= 2 and
              state["grid_loaded"] == state["grid"] and state["positives"] > 0 and state["negatives"] > 0 and
              "SVM accuracy" in state["why"] and
              (thumbnail_px is None or all(side == thumbnail_px for side in state["thumbnail_sides"])))
        return 0 if ok else 1
    finally:
        driver.close()


sys.exit(main())
