"""`jpegsr serve`: the API through the framework's test client, a load test against a real
server on 127.0.0.1, and the page driven in a real headless Chromium (Debian's package)."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

fastapi = pytest.importorskip("fastapi", reason="needs the serve extra")
from fastapi.testclient import TestClient  # noqa: E402

import jpegsr.serve.app as serve_app  # noqa: E402
from jpegsr.serve.app import ServeOptions, create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _jpeg(h: int = 24, w: int = 32, quality: int = 30) -> bytes:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 7 + yy * 3) % 256, (xx * 2) % 256, (yy * 5) % 256], -1)
    img = np.clip(img + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(ServeOptions(max_upload_mb=1, max_pixels=100_000)))


def test_good_jpeg_comes_back_four_times_larger(client):
    r = client.post("/api/upscale", files={"file": ("photo.jpg", _jpeg(), "image/jpeg")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-jpeg-quality"] == "30" and r.headers["x-model"]
    assert r.headers["x-input-size"] == "32x24"
    assert 'filename="photo_x4.png"' in r.headers["content-disposition"]
    assert Image.open(io.BytesIO(r.content)).size == (128, 96)
    webp = client.post("/api/upscale", files={"file": ("p.jpg", _jpeg())},
                       data={"format": "webp", "method": "bicubic"})  # fmt: skip
    assert webp.status_code == 200 and webp.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(webp.content)).size == (128, 96)
    assert webp.headers["x-model"] == "bicubic"


def test_output_size_fields(client):
    cases = (
        ({"outscale": "2"}, (64, 48), "p_x2.png"),
        ({"width": "40"}, (40, 30), "p_40x30.png"),
        ({"height": "30", "method": "bicubic"}, (40, 30), "p_40x30.png"),
    )
    for data, size, name in cases:
        r = client.post("/api/upscale", files={"file": ("p.jpg", _jpeg())}, data=data)
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == size
        assert r.headers["x-output-size"] == f"{size[0]}x{size[1]}"
        assert f'filename="{name}"' in r.headers["content-disposition"]
    r = client.post("/api/upscale", files={"file": ("p.jpg", _jpeg())}, data={"width": "500"})
    assert r.status_code == 400 and "width must be in 1..128" in r.json()["detail"]


def test_output_quality_field_for_webp(client):
    sizes = {}
    for q in ("95", "30"):
        data = {"format": "webp", "output_quality": q}
        r = client.post("/api/upscale", files={"file": ("p.jpg", _jpeg())}, data=data)
        assert r.status_code == 200
        sizes[q] = len(r.content)
    assert sizes["30"] < sizes["95"]
    r = client.post("/api/upscale", files={"file": ("p.jpg", _jpeg())},
                    data={"output_quality": "30"})  # fmt: skip
    assert r.status_code == 400 and "png is lossless" in r.json()["detail"]


def test_health_models_and_openapi(client):
    assert client.get("/api/health").json()["status"] == "ok"
    models = client.get("/api/models").json()
    assert models["default"] == "auto" and models["auto"]["20"] in models["shipped"]
    assert "/api/upscale" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "<title>jpegsr" in page.text
    assert client.get("/static/app.js").status_code == 200


@pytest.mark.parametrize(
    ("content", "data", "status", "message"),
    [
        (b"this is not an image" * 5, {}, 415, "not an image"),
        (_jpeg()[:300], {}, 415, "corrupt"),
        (b"", {}, 415, "empty file"),
        (_jpeg(400, 400), {}, 400, "image too large"),  # 160,000 pixels over 100,000
        (bytes(2 * 2**20), {}, 413, "file too large"),
        (_jpeg(), {"format": "gif"}, 400, "format must be png or webp"),
        (_jpeg(), {"quality": "101"}, 400, "quality must be in 1..100"),
        (_jpeg(), {"model": "no_such_model"}, 400, "no shipped model"),
    ],
)
def test_bad_inputs_get_the_right_status_and_the_cli_message(client, content, data, status,
                                                            message):  # fmt: skip
    r = client.post("/api/upscale", files={"file": ("x.jpg", content)}, data=data)
    assert r.status_code == status
    assert message in r.json()["detail"] and "Traceback" not in r.text


def test_full_queue_answers_503_with_retry_after(monkeypatch):
    started, release = threading.Event(), threading.Event()
    real = serve_app._upscale_file

    def slow(*args):
        started.set()
        release.wait(30)
        return real(*args)

    monkeypatch.setattr(serve_app, "_upscale_file", slow)
    client = TestClient(create_app(ServeOptions(workers=1, queue=1)))
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(r=client.post(
        "/api/upscale", files={"file": ("a.jpg", _jpeg())})))  # fmt: skip
    worker.start()
    assert started.wait(30)
    busy = client.post("/api/upscale", files={"file": ("b.jpg", _jpeg())})
    assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
    release.set()
    worker.join(60)
    assert first["r"].status_code == 200
    again = client.post("/api/upscale", files={"file": ("c.jpg", _jpeg())})
    assert again.status_code == 200  # the queue frees up


def test_temporary_files_are_removed(client, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert client.post("/api/upscale", files={"file": ("a.jpg", _jpeg())}).status_code == 200
    assert client.post("/api/upscale", files={"file": ("b.jpg", b"junk")}).status_code == 415
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- a real server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    cmd = [sys.executable, "-m", "jpegsr.cli", "serve", "--port", str(port), "--queue", "3",
           "--threads", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("jpegsr serve did not start: " + proc.stderr.read().decode()[-2000:])
    yield url
    proc.terminate()
    proc.wait(30)


def test_load_all_answered_none_lost_server_healthy(server):
    import httpx

    body = _jpeg(32, 48)

    def call(i: int) -> int:
        r = httpx.post(server + "/api/upscale", files={"file": (f"{i}.jpg", body)}, timeout=120)
        if r.status_code == 200:
            assert Image.open(io.BytesIO(r.content)).size == (192, 128)
        return r.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(call, range(24)))
    assert len(codes) == 24 and set(codes) <= {200, 503} and codes.count(200) >= 3
    health = httpx.get(server + "/api/health").json()
    assert health["status"] == "ok" and health["busy"] == 0


# --------------------------------------------------------------------------- a real browser


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def test_page_in_a_real_browser(server, tmp_path):
    found = _chromium()
    if found is None:
        if os.environ.get("JPEGSR_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromium-driver are required (.ci/run installs them)")
        pytest.skip("no chromium + chromedriver here (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1200,1000"):  # fmt: skip
        options.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})  # fmt: skip
    browser = webdriver.Chrome(service=Service(found[1]), options=options)
    try:
        browser.get(server + "/")
        photo = tmp_path / "photo.jpg"
        photo.write_bytes(_jpeg(60, 80, quality=20))
        browser.find_element(By.ID, "files").send_keys(str(photo))
        wait = WebDriverWait(browser, 120)
        status = (By.CSS_SELECTOR, ".card .status")
        wait.until(lambda b: any(w in b.find_element(*status).text for w in ("Done", "Could")))
        card = browser.find_element(By.CSS_SELECTOR, ".card")
        assert "Done" in card.find_element(By.CSS_SELECTOR, ".status").text
        info = card.find_element(By.CSS_SELECTOR, ".info").text
        assert "JPEG quality 20" in info and "80x60" in info
        # the slider moves the divide between bicubic and jpegsr
        after = card.find_element(By.CSS_SELECTOR, ".after")
        browser.execute_script("const s = arguments[0]; s.value = 80;"
                               "s.dispatchEvent(new Event('input'));",
                               card.find_element(By.CSS_SELECTOR, ".slider"))  # fmt: skip
        assert "80%" in after.value_of_css_property("clip-path")
        browser.execute_script("const z = arguments[0]; z.value = 4;"
                               "z.dispatchEvent(new Event('input'));",
                               card.find_element(By.CSS_SELECTOR, ".zoom"))  # fmt: skip
        assert after.size["width"] == 4 * 320  # zoomed to pixel level: 4 screen px a pixel
        card.find_element(By.CSS_SELECTOR, ".download").click()
        deadline = time.time() + 30
        while time.time() < deadline and not list(downloads.glob("*.png")):
            time.sleep(0.2)
        saved = list(downloads.glob("*.png"))
        assert [p.name for p in saved] == ["photo_x4.png"]
        assert Image.open(saved[0]).size == (320, 240)
        # the size and model choices: 2x with a named model, bicubic at the same size
        from selenium.webdriver.support.select import Select

        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#model option")) > 1)
        Select(browser.find_element(By.ID, "outscale")).select_by_value("2")
        Select(browser.find_element(By.ID, "model")).select_by_value("q20")
        browser.find_element(By.ID, "files").send_keys(str(photo))
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".card")) == 2
                   and "Done" in b.find_element(*status).text)  # fmt: skip
        newest = browser.find_element(By.CSS_SELECTOR, ".card")
        assert "model q20" in newest.find_element(By.CSS_SELECTOR, ".info").text
        sizes = browser.execute_script(
            "const c = arguments[0]; return [c.querySelector('.before').naturalWidth,"
            "c.querySelector('.after').naturalWidth, c.querySelector('.download').download];",
            newest,
        )
        assert sizes == [160, 160, "photo_x2.png"]
        # a file that is not an image: the error is on the page, in plain words
        bad = tmp_path / "notes.jpg"
        bad.write_text("not a picture")
        browser.find_element(By.ID, "files").send_keys(str(bad))
        wait.until(lambda b: "notes.jpg" in b.find_element(*status).text
                   and "Could not" in b.find_element(*status).text)  # fmt: skip
        text = browser.find_element(*status).text
        assert text == "Could not upscale notes.jpg: not an image, or a format Pillow cannot read"
    finally:
        browser.quit()
