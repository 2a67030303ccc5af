"""`s2tf serve` in a real headless browser: Debian's chromium driven by Playwright. Upload a voice,
click Face and see the image; click Talk and get a video element the browser can play.

Screenshots go to $S2TF_SCREENSHOTS (default: the test's temp folder). Without a chromium binary the
test is skipped with a reason, unless S2TF_REQUIRE_BROWSER=1 (CI sets it, after installing chromium)."""

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("S2TF_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    if os.environ.get("S2TF_REQUIRE_BROWSER") == "1":
        raise RuntimeError("S2TF_REQUIRE_BROWSER=1 but no chromium binary found (apt-get install chromium)")
    pytest.skip("no chromium binary (apt-get install chromium; CI requires it)", allow_module_level=True)

playwright = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

from s2tf_cli.web.app import ServeLimits, create_app  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def served(tiny_weights):
    from s2tf_cli.pipeline import S2TF

    model = S2TF.from_pretrained(tiny_weights, device="cpu")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(model, ServeLimits()), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(served):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 960, "height": 900})
        page.goto(served)
        yield page
        browser.close()


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("S2TF_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_face_in_the_browser(page, tmp_path):
    assert "never an identification" in page.inner_text("#responsible")
    page.set_input_files("#voice", str(EXAMPLES / "voice_a.wav"))
    page.click("#face")
    page.wait_for_function("() => { const i = document.querySelector('img.face'); return i && i.complete && i.naturalWidth > 0; }",
                           timeout=120_000)  # fmt: skip
    assert page.eval_on_selector("img.face", "i => i.naturalWidth") > 0
    assert page.inner_text("#error") == ""
    assert "weights" in page.inner_text("#provenance")
    page.screenshot(path=str(_shots(tmp_path) / "serve-face.png"), full_page=True)


def test_talk_in_the_browser_gives_a_playable_video(page, tmp_path):
    page.set_input_files("#voice", str(EXAMPLES / "voice_b.wav"))
    page.click("#talk")
    page.wait_for_selector("video#talkvideo", timeout=300_000)
    page.wait_for_function("() => { const v = document.querySelector('video#talkvideo'); return v.readyState >= 2 && v.duration > 0; }",
                           timeout=60_000)  # fmt: skip
    duration = page.eval_on_selector("video#talkvideo", "v => v.duration")
    assert 3.0 < duration < 10.0
    assert page.eval_on_selector("video#talkvideo", "v => v.videoWidth") > 0, "the browser decodes the frames"
    assert page.get_attribute("#results a", "download") == "s2tf-talk.mp4"
    page.screenshot(path=str(_shots(tmp_path) / "serve-talk.png"), full_page=True)


def test_a_bad_file_shows_the_one_line_error_in_the_page(page, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all\n" * 20)
    page.set_input_files("#voice", str(bad))
    page.click("#face")
    page.wait_for_function("() => document.getElementById('error').textContent.length > 0", timeout=30_000)
    assert page.inner_text("#error").startswith("notes.wav: not a readable audio file")
