"""`s2tf serve` at the HTTP level: each job, each error path, the queue, the files it keeps and serves."""

import io
import time

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf
from conftest import speechlike
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is part of the test extra")
from fastapi.testclient import TestClient  # noqa: E402

from s2tf_cli.web.app import ServeLimits, create_app  # noqa: E402


def _wav(seconds=1.6, f0=130, seed=0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speechlike(seconds, f0=f0, seed=seed), 16000, format="WAV")
    return buf.getvalue()


@pytest.fixture
def client(pipeline, gallery):
    files = sorted(p for p in gallery.rglob("*") if p.suffix in (".jpg", ".png", ".webp"))
    app = create_app(pipeline, ServeLimits(max_seconds=5, max_upload_mb=1, queue=32, keep_seconds=60), files)
    with TestClient(app) as c:
        yield c


def _wait(client, reply, timeout=120):
    assert reply.status_code == 202, reply.text
    job = reply.json()["job"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = client.get(f"/api/jobs/{job}").json()
        if state["state"] in ("done", "error"):
            return state
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_page_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for needle in ("estimate", "never an identification", 'id="face"', 'id="talk"', 'id="retrieve"', "MediaRecorder"):
        assert needle in page.text
    info = client.get("/api/info").json()
    assert info["weights"] and info["gallery"] == 4 and info["provenance"]["s2tf:synthetic"] == "true"


def test_face_job_gives_pngs_with_provenance(client):
    state = _wait(
        client, client.post("/api/face", files={"voice": ("v.wav", _wav())}, data={"samples": "3", "seed": "4"})
    )
    assert state["state"] == "done" and state["done"] == state["total"] == 3
    images = [client.get(u) for u in state["result"]["images"]]
    assert all(r.status_code == 200 and r.headers["content-type"] == "image/png" for r in images)
    im = Image.open(io.BytesIO(images[0].content))
    assert im.size == (32, 32) and im.text["s2tf:synthetic"] == "true"
    again = _wait(
        client, client.post("/api/face", files={"voice": ("v.wav", _wav())}, data={"samples": "3", "seed": "4"})
    )
    assert [client.get(u).content for u in again["result"]["images"]] == [r.content for r in images], "deterministic"


def test_talk_job_gives_a_playable_mp4(client, tmp_path, pose_image):
    reply = client.post("/api/talk", files={"voice": ("v.flac", _wav(1.2)), "pose": ("p.jpg", pose_image.read_bytes())})
    state = _wait(client, reply)
    assert state["state"] == "done", state
    video = client.get(state["result"]["video"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    path = tmp_path / "t.mp4"
    path.write_bytes(video.content)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = sum(1 for _ in reader)
    assert meta["size"] == (32, 32) and frames == state["total"] == 30


def test_retrieve_ranks_the_gallery_and_serves_only_its_images(client):
    state = _wait(client, client.post("/api/retrieve", files={"voice": ("v.wav", _wav())}))
    assert state["state"] == "done", state
    matches = state["result"]["matches"]
    assert [m["rank"] for m in matches] == [1, 2, 3] and state["result"]["skipped"] == 1  # broken.jpg
    assert [m["score"] for m in matches] == sorted((m["score"] for m in matches), reverse=True)
    assert client.get(matches[0]["image"]).status_code == 200
    for bad in (
        "/gallery/4",
        "/gallery/-1",
        "/gallery/..%2f..%2fetc%2fpasswd",
        "/results/..%2f..%2fetc%2fpasswd",
        "/results/../../etc/passwd",
        "/results/%2e%2e%2fpyproject.toml",
        "/results/passwd",
    ):
        r = client.get(bad)
        assert r.status_code in (404, 422) and "root:" not in r.text, bad


@pytest.mark.parametrize(
    "files,data,message",
    [
        ({"voice": ("notes.wav", b"hello, I am text\n" * 50)}, {}, "notes.wav: not a readable audio file"),
        ({"voice": ("long.wav", None)}, {}, "long.wav: clip is 8 s long; this server accepts up to 5 s"),
        ({"voice": ("big.wav", b"\0" * 1_100_000)}, {}, "big.wav: voice file is larger than the 1 MB limit"),
        ({"voice": ("empty.wav", b"")}, {}, "empty.wav: empty voice file"),
        ({"voice": ("v.wav", None)}, {"samples": "9"}, "samples must be between 1 and 8, not 9"),
    ],
)
def test_bad_requests_get_one_line_errors(client, files, data, message):
    name, body = files["voice"]
    if body is None:
        body = _wav(8.0) if name == "long.wav" else _wav()
    r = client.post("/api/face", files={"voice": (name, body)}, data=data)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error.startswith(message) and "in-" not in error, "named as sent, never by the server's temp path"
    assert "Traceback" not in r.text and "\n" not in error
    assert not list(client.app.state.server.folder.glob("in-*")), "a refused upload is not kept"


def test_silence_fails_inside_the_job_with_the_cli_message(client):
    buf = io.BytesIO()
    sf.write(buf, np.zeros(32000, np.float32), 16000, format="WAV")
    state = _wait(client, client.post("/api/face", files={"voice": ("quiet.wav", buf.getvalue())}))
    assert (
        state["state"] == "error"
        and state["error"] == "quiet.wav: no speech found (silence, noise or music without a voice)"
    )


def test_retrieve_without_a_gallery_is_refused(pipeline):
    with TestClient(create_app(pipeline, ServeLimits())) as c:
        r = c.post("/api/retrieve", files={"voice": ("v.wav", _wav())})
        assert r.status_code == 400 and "--gallery" in r.json()["error"]


def test_burst_of_20_completes_and_leaves_no_uploads(pipeline):
    app = create_app(pipeline, ServeLimits(queue=32))
    server = app.state.server
    with TestClient(app) as c:
        replies = [c.post("/api/face", files={"voice": ("v.wav", _wav(seed=i))}) for i in range(20)]
        states = [_wait(c, r) for r in replies]
        assert all(s["state"] == "done" for s in states)
        assert not list(server.folder.glob("in-*")), "uploads are removed once their job ran"
        assert len(list(server.folder.glob("*.png"))) == 20
    assert not server.folder.exists(), "shutdown removes the server's temp folder"


def test_a_full_queue_answers_503_at_once(pipeline):
    app = create_app(pipeline, ServeLimits(queue=2))
    server = app.state.server
    gate = server.pool.submit(time.sleep, 2.0)  # hold the worker so jobs queue up
    with TestClient(app) as c:
        codes = [c.post("/api/face", files={"voice": ("v.wav", _wav())}).status_code for _ in range(4)]
        assert codes == [202, 202, 503, 503]
        assert "busy" in c.post("/api/face", files={"voice": ("v.wav", _wav())}).json()["error"]
        gate.result()


def test_results_expire_after_their_first_download(pipeline):
    app = create_app(pipeline, ServeLimits(keep_seconds=0.0))
    with TestClient(app) as c:
        first = _wait(c, c.post("/api/face", files={"voice": ("v.wav", _wav())}))
        url = first["result"]["images"][0]
        assert c.get(url).status_code == 200
        time.sleep(0.01)
        _wait(c, c.post("/api/face", files={"voice": ("v.wav", _wav(seed=3))}))  # expiry runs after each job
        assert c.get(url).status_code == 404


def test_result_files_are_capped_even_when_never_fetched(pipeline):
    app = create_app(pipeline, ServeLimits(max_results=2))
    with TestClient(app) as c:
        for i in range(5):
            _wait(c, c.post("/api/face", files={"voice": ("v.wav", _wav(seed=i))}))
        assert len(list(app.state.server.folder.glob("*.png"))) == 2


def test_cli_serve_checks_options_and_warns_off_loopback(tiny_weights, gallery, monkeypatch, tmp_path):
    import uvicorn
    from typer.testing import CliRunner

    from s2tf_cli.cli import app

    runner = CliRunner()
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app_, host, port, log_level: calls.append((app_, host, port)))
    ok = runner.invoke(app, ["serve", "-w", str(tiny_weights), "--gallery", str(gallery), "--port", "8123"])
    assert ok.exit_code == 0, ok.output
    (served, host, port) = calls[0]
    assert host == "127.0.0.1" and port == 8123 and "warning" not in ok.stderr
    assert len(served.state.server.gallery) == 4
    wide = runner.invoke(app, ["serve", "-w", str(tiny_weights), "--host", "0.0.0.0"])
    assert wide.exit_code == 0 and "warning: serving on 0.0.0.0" in wide.stderr
    for args, message in [(["--gallery", str(tmp_path / "nope")], "no such folder"), (["--port", "0"], "--port must be"),
                          (["--gallery", str(tmp_path)], "no image files found"), (["--queue", "0"], "must be positive")]:  # fmt: skip
        bad = runner.invoke(app, ["serve", "-w", str(tiny_weights), *args])
        assert bad.exit_code == 2 and message in bad.stderr and "Traceback" not in bad.output, args
    assert len(calls) == 2, "no server is started for a refused option"
