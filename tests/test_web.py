"""`s2tf serve` at the HTTP level: each job, each error path, the queue, the files it keeps and serves."""

import io
import json
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


# ---------------------------------------------------------------------------------------------- live
def _pcm(wave: np.ndarray) -> bytes:
    return (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()


def _frame(payload: bytes) -> tuple[int, float, np.ndarray]:
    from s2tf_cli.web.live import HEADER

    index, seconds = HEADER.unpack_from(payload)
    image = np.asarray(Image.open(io.BytesIO(payload[HEADER.size :])).convert("RGB"))
    return index, seconds, image


def test_live_streams_frames_of_the_talking_face_as_audio_arrives(client, pipeline, pose_image):
    """20 ms chunks of 16 kHz PCM, and a page that shows each frame as it comes: after each chunk exactly the
    frames it completes arrive (none waits past the look-ahead), in order, stamped with their time, at the
    model's size; nothing is dropped; the face is still in silence and moves with speech."""
    import base64
    import math

    wave = np.concatenate([np.zeros(16000, np.float32), speechlike(2.0, seed=3)])
    pose = "data:image/jpeg;base64," + base64.b64encode(pose_image.read_bytes()).decode()
    frames = []
    with client.websocket_connect("/api/live") as ws:
        ws.send_json({"start": {"sample_rate": 16000, "seed": None, "pose": pose}})
        ready = ws.receive_json()["ready"]
        assert ready["fps"] == 25 and ready["size"] == pipeline.cfg.image_size and 0 < ready["lookahead_ms"] < 300
        for k in range(0, len(wave), 320):
            ws.send_bytes(_pcm(wave[k : k + 320]))
            owed = max(0, math.floor((min(k + 320, len(wave)) / 16000 - ready["lookahead_ms"] / 1000) * 25 - 0.5) + 1)
            while len(frames) < owed:
                frames.append(_frame(ws.receive_bytes()))
                ws.send_json({"ack": frames[-1][0]})
        ws.send_json({"stop": True})
        while (message := ws.receive()).get("bytes") is not None:
            frames.append(_frame(message["bytes"]))
        end = json.loads(message["text"])["end"]
    assert end == {"frames": 75, "sent": 75, "dropped": 0}
    assert [f[0] for f in frames] == list(range(75))
    assert np.allclose([f[1] for f in frames], (np.arange(75) + 0.5) / 25)
    assert frames[0][2].shape == (pipeline.cfg.image_size, pipeline.cfg.image_size, 3)
    steps = np.abs(np.diff(np.stack([f[2] for f in frames]).astype(int), axis=0)).mean(axis=(1, 2, 3))
    assert np.all(steps[:18] == 0), "silence before any speech: one still face"
    assert steps[30:].mean() > 0.3, "speech moves the face"
    assert client.get("/api/info").json()["live_busy"] is False


def test_live_drops_frames_for_a_page_that_does_not_keep_up(client):
    """A page that never acknowledges gets at most IN_FLIGHT frames, and at the end the few the end
    completes: the rest are dropped, never queued."""
    from s2tf_cli.web.live import IN_FLIGHT

    with client.websocket_connect("/api/live") as ws:
        ws.send_json({"start": {"sample_rate": 48000}})  # resampled to the model's 16 kHz as it comes
        assert "ready" in ws.receive_json()
        pcm = _pcm(speechlike(2.0, sr=48000))
        for k in range(0, len(pcm), 2223):  # chunks of any size, split samples too
            ws.send_bytes(pcm[k : k + 2223])
        ws.send_json({"stop": True})
        got = []
        while True:
            message = ws.receive()
            if message.get("bytes") is None:
                end = json.loads(message["text"])["end"]
                break
            got.append(_frame(message["bytes"])[0])
    # (the first frame sent is 0 unless a loaded machine made the talker's first step cover several frames:
    # then all but the newest of those wait in vain and are dropped too)
    assert got == sorted(set(got)) and got[-1] == 49, got
    assert end["frames"] == 50 and end["sent"] == len(got) and end["sent"] + end["dropped"] == 50
    assert len(got) <= IN_FLIGHT + 4, "at most IN_FLIGHT unacknowledged, then only the frames the end completes"


def test_live_is_one_session_at_a_time_and_refuses_bad_starts(client):
    with client.websocket_connect("/api/live") as first:
        first.send_json({"start": {"sample_rate": 16000}})
        assert "ready" in first.receive_json()
        assert client.get("/api/info").json()["live_busy"] is True
        with client.websocket_connect("/api/live") as second:
            assert second.receive_json() == {"error": "busy: another live session is running on this server; "
                                                      "try again when it ends"}  # fmt: skip
    for start, message in [
        ({"hello": 1}, 'the first message must be {"start"'),
        ({"start": {"sample_rate": 4000}}, "sample_rate must be a whole number of Hz in 8000-96000, not 4000"),
        ({"start": {"sample_rate": 16000, "seed": "x"}}, "seed must be a whole number or null"),
        ({"start": {"sample_rate": 16000, "pose": "http://x/y.jpg"}}, "pose must be an image data URL"),
        ({"start": {"sample_rate": 16000, "pose": "data:image/png;base64,aGVsbG8="}}, "pose image"),
    ]:
        with client.websocket_connect("/api/live") as ws:
            ws.send_json(start)
            error = ws.receive_json()["error"]
            assert message in error and "\n" not in error, error
    assert client.get("/api/info").json()["live_busy"] is False
    assert not any(client.app.state.server.folder.iterdir()), "nothing stored"


def test_live_refuses_audio_sent_faster_than_it_is_spoken(client):
    """12 s of audio at once is a backlog no live session should hold: one-line error, socket closed, the
    next session can start."""
    from s2tf_cli.web.live import BACKLOG_MAX_S, BEHIND

    assert BACKLOG_MAX_S < 12
    with client.websocket_connect("/api/live") as ws:
        ws.send_json({"start": {"sample_rate": 16000}})
        assert "ready" in ws.receive_json()
        pcm = _pcm(speechlike(12.0))
        for k in range(0, len(pcm), 64000):
            ws.send_bytes(pcm[k : k + 64000])
        while (message := ws.receive()).get("bytes") is not None:
            pass
        assert json.loads(message["text"]) == {"error": BEHIND}
    assert client.get("/api/info").json()["live_busy"] is False
