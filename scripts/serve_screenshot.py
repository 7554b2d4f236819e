"""docs/serve.png: the `jpegsr serve` page with a result, taken in headless Chromium.

    python scripts/serve_screenshot.py [IMAGE] [-o docs/serve.png]

Starts `jpegsr serve` on a free local port, uploads IMAGE (default: examples/chelsea_q15.jpg)
through the page, waits for the result and saves a screenshot. Needs Debian's chromium and
chromium-driver, and selenium (the test extra).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", nargs="?", type=Path, default=Path("examples/chelsea_q15.jpg"))
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/serve.png"))
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "jpegsr.cli", "serve", "--port", str(port)])
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--window-size=1100,1150"):
        options.add_argument(flag)
    browser = None
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/api/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        browser.get(url + "/")
        browser.find_element(By.ID, "files").send_keys(str(args.image.resolve()))
        status = (By.CSS_SELECTOR, ".card .status")
        WebDriverWait(browser, 300).until(lambda b: "Done" in b.find_element(*status).text)
        browser.save_screenshot(str(args.out))
        print(f"wrote {args.out}")
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
