"""`s2tf serve`: a local web page over the same `S2TF` API as the CLI (FastAPI + one plain HTML page).

Jobs run one at a time on one loaded model (a single worker thread) behind a bounded queue; a full
queue answers 503 at once instead of piling up memory. Uploads and results live in one private temp
folder under random names; results are deleted a while after they were first fetched (a video element
fetches its file several times) and everything goes at shutdown. Only three kinds of paths are ever
read: that folder's result names, the gallery's files by their index in the list made at start-up,
and the page itself, so no request can name a server file.
"""

import asyncio
import logging
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RESULT_NAME = re.compile(r"^[A-Za-z0-9_-]{16,64}\.(png|mp4)$")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".webm", ".mp4", ".opus", ".oga"}


@dataclass
class ServeLimits:
    max_upload_mb: float = 20.0  # per uploaded file
    max_seconds: float = 60.0  # longest voice clip accepted
    queue: int = 8  # jobs waiting or running at most; more get 503
    max_samples: int = 8  # faces per Face request
    keep_seconds: float = 300.0  # a result lives this long after its first download
    max_results: int = 200  # result files kept at most (the oldest go first, fetched or not)


@dataclass
class Job:
    id: str
    kind: str
    state: str = "queued"  # queued, running, done, error
    done: int = 0
    total: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""


class Server:
    """The model, the queue and the files: everything the routes share (no globals)."""

    def __init__(self, model, limits: ServeLimits, gallery: list[Path] | None = None):
        self.model = model
        self.limits = limits
        self.gallery = gallery or []
        self.folder = Path(tempfile.mkdtemp(prefix="s2tf-serve-"))
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2tf-job")
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.fetched: dict[str, float] = {}  # result name -> time of its first download
        self.names: dict[str, str] = {}  # upload path -> the file name the user sent (for messages)

    # ------------------------------------------------------------------ files
    def save_upload(self, data: bytes, filename: str, what: str) -> Path:
        from ..errors import UsageError

        if len(data) > self.limits.max_upload_mb * 1e6:
            raise UsageError(f"{filename}: {what} file is larger than the {self.limits.max_upload_mb:g} MB limit")
        if not data:
            raise UsageError(f"{filename}: empty {what} file")
        suffix = Path(filename).suffix.lower()[:8]
        if not re.fullmatch(r"\.[a-z0-9]+", suffix or "."):
            suffix = ""
        path = self.folder / f"in-{secrets.token_urlsafe(12)}{suffix}"
        path.write_bytes(data)
        self.names[str(path)] = filename
        return path

    def message(self, exc: Exception) -> str:
        """The error's first line, naming uploads as the user named them (never our temp paths)."""
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        for temp, name in self.names.items():
            text = text.replace(temp, name)
        return text

    def discard(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self.names.pop(str(path), None)

    def result_path(self, suffix: str) -> Path:
        return self.folder / f"{secrets.token_urlsafe(16)}{suffix}"

    def result_file(self, name: str) -> Path | None:
        """The file behind a result name, or None: names are checked, never joined blindly."""
        if not RESULT_NAME.fullmatch(name):
            return None
        path = self.folder / name
        if not path.is_file():
            return None
        self.fetched.setdefault(name, time.monotonic())
        return path

    def expire(self) -> None:
        now = time.monotonic()
        for name, first in list(self.fetched.items()):
            if now - first > self.limits.keep_seconds:
                (self.folder / name).unlink(missing_ok=True)
                del self.fetched[name]
        results = sorted(
            (p for p in self.folder.iterdir() if RESULT_NAME.fullmatch(p.name)), key=lambda p: p.stat().st_mtime
        )
        for path in results[: max(0, len(results) - self.limits.max_results)]:  # never fetched, or not yet expired
            path.unlink(missing_ok=True)
            self.fetched.pop(path.name, None)
        finished = [j for j in self.jobs.values() if j.state in ("done", "error")]
        for job in finished[:-200]:  # job records are small; keep the recent ones
            self.jobs.pop(job.id, None)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ jobs
    def submit(self, kind: str, work: Callable[[Job], dict], inputs: list[Path]) -> Job:
        from ..errors import S2TFError

        with self.lock:
            active = sum(1 for j in self.jobs.values() if j.state in ("queued", "running"))
            if active >= self.limits.queue:
                for p in inputs:
                    self.discard(p)
                raise QueueFull(f"the server is busy ({active} jobs queued); try again shortly")
            job = Job(secrets.token_urlsafe(12), kind)
            self.jobs[job.id] = job

        def run() -> None:
            job.state = "running"
            try:
                job.result = work(job)
                job.state = "done"
            except S2TFError as exc:
                job.error, job.state = self.message(exc), "error"
            except Exception as exc:  # a bug: logged here, one line for the page, no traceback there
                log.exception("job %s failed", job.id)
                job.error, job.state = f"unexpected {type(exc).__name__} (see the server log)", "error"
            finally:
                for p in inputs:
                    self.discard(p)
                self.expire()

        self.pool.submit(run)
        return job

    def check_voice(self, path: Path, name: str) -> None:
        """Clip length against the limit, before the job is queued (decoding is cheap next to generating)."""
        from ..audio import load_audio
        from ..errors import S2TFError, UsageError

        try:
            wave = load_audio(path, self.model.cfg.audio.sample_rate)
        except S2TFError as exc:
            message = self.message(exc)
            self.discard(path)
            raise type(exc)(message) from None
        seconds = len(wave) / self.model.cfg.audio.sample_rate
        if seconds > self.limits.max_seconds:
            self.discard(path)
            raise UsageError(
                f"{name}: clip is {seconds:.0f} s long; this server accepts up to {self.limits.max_seconds:g} s"
            )


class QueueFull(Exception):
    pass


def create_app(model, limits: ServeLimits | None = None, gallery: list[Path] | None = None):
    """The FastAPI app for a loaded `S2TF` model; `gallery` is the list of image files `retrieve` ranks."""
    from fastapi import FastAPI, File, Form, Request, UploadFile, WebSocket
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    from .. import __version__
    from ..errors import S2TFError
    from ..modelcard import RESPONSIBLE_USE
    from ..outputs import provenance
    from .live import LiveGate, run_live

    server = Server(model, limits or ServeLimits(), gallery)
    live_gate = LiveGate()

    @asynccontextmanager
    async def lifespan(_app):
        yield
        server.close()

    app = FastAPI(title="s2tf", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.server = server
    page = (Path(__file__).parent / "page.html").read_text()

    @app.exception_handler(S2TFError)
    async def _user_error(request: Request, exc: S2TFError):
        return JSONResponse({"error": str(exc).splitlines()[0]}, status_code=400)

    @app.exception_handler(QueueFull)
    async def _busy(request: Request, exc: QueueFull):
        return JSONResponse({"error": str(exc)}, status_code=503)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("request failed")
        return JSONResponse({"error": f"unexpected {type(exc).__name__} (see the server log)"}, status_code=500)

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return page

    @app.get("/api/info")
    async def info():
        meta = provenance(model.weights_label, "serve")
        return {"version": __version__, "weights": model.weights_label, "image_size": model.cfg.image_size,
                "provenance": meta, "responsible_use": RESPONSIBLE_USE.split("\n", 2)[-1].replace("\n", " "),
                "gallery": len(server.gallery), "limits": server.limits.__dict__, "live_busy": live_gate.busy}  # fmt: skip

    async def _voice(voice: UploadFile) -> Path:
        data = await voice.read(int(server.limits.max_upload_mb * 1e6) + 1)
        name = Path(voice.filename or "voice").name
        path = server.save_upload(data, name, "voice")
        await asyncio.get_running_loop().run_in_executor(None, server.check_voice, path, name)
        return path

    def _job_reply(job: Job):
        return JSONResponse({"job": job.id, "state": job.state}, status_code=202)

    @app.post("/api/face")
    async def face(voice: UploadFile = File(...), seed: int | None = Form(None), samples: int = Form(1)):
        from ..errors import UsageError
        from ..images import png_bytes

        if not 1 <= samples <= server.limits.max_samples:
            raise UsageError(f"samples must be between 1 and {server.limits.max_samples}, not {samples}")
        path = await _voice(voice)

        def work(job: Job) -> dict:
            job.total = samples
            faces = model.face(path, seed=seed, n_samples=samples)
            meta = provenance(model.weights_label, "face")
            names = []
            for img in faces:
                out = server.result_path(".png")
                out.write_bytes(png_bytes(img, meta))
                names.append(out.name)
                job.done += 1
            return {"images": [f"/results/{n}" for n in names]}

        return _job_reply(server.submit("face", work, [path]))

    @app.post("/api/talk")
    async def talk(voice: UploadFile = File(...), pose: UploadFile | None = File(None)):
        path = await _voice(voice)
        inputs = [path]
        pose_path = None
        if pose is not None and pose.filename:
            data = await pose.read(int(server.limits.max_upload_mb * 1e6) + 1)
            try:
                pose_path = server.save_upload(data, Path(pose.filename).name, "pose image")
            except S2TFError:
                server.discard(path)
                raise
            inputs.append(pose_path)

        def work(job: Job) -> dict:
            out = server.result_path(".mp4")

            def step(n: int) -> None:
                job.done += n

            def total(n: int) -> None:
                job.total = n

            model.talk(path, out, pose=pose_path, progress=step, on_frames=total)
            return {"video": f"/results/{out.name}"}

        return _job_reply(server.submit("talk", work, inputs))

    @app.post("/api/retrieve")
    async def retrieve(voice: UploadFile = File(...), top: int = Form(12)):
        from ..errors import UsageError

        if not server.gallery:
            raise UsageError("no gallery: start the server with --gallery DIR")
        path = await _voice(voice)

        def work(job: Job) -> dict:
            job.total = len(server.gallery)

            def step(n: int) -> None:
                job.done += n

            matches, skipped = model.retrieve(path, server.gallery, progress=step)
            index = {p: i for i, p in enumerate(server.gallery)}
            return {"matches": [{"rank": m.rank, "score": round(m.score, 4), "name": m.path.name,
                                 "image": f"/gallery/{index[m.path]}"} for m in matches[: max(1, min(top, 100))]],
                    "skipped": len(skipped)}  # fmt: skip

        return _job_reply(server.submit("retrieve", work, [path]))

    @app.websocket("/api/live")
    async def live(ws: WebSocket):
        await ws.accept()
        await run_live(ws, model, live_gate, int(server.limits.max_upload_mb * 1e6), server)

    @app.get("/api/jobs/{job_id}")
    async def job_state(job_id: str):
        job = server.jobs.get(job_id)
        if job is None:
            return JSONResponse({"error": "no such job"}, status_code=404)
        return {"job": job.id, "kind": job.kind, "state": job.state, "done": job.done, "total": job.total,
                "result": job.result, "error": job.error}  # fmt: skip

    @app.get("/results/{name}")
    async def result(name: str):
        path = server.result_file(name)
        if path is None:
            return JSONResponse(
                {"error": "no such result (results expire a few minutes after download)"}, status_code=404
            )
        media = "video/mp4" if name.endswith(".mp4") else "image/png"
        return FileResponse(path, media_type=media, filename=f"s2tf-{name[-8:]}")

    @app.get("/gallery/{index}")
    async def gallery_image(index: int):
        if not 0 <= index < len(server.gallery):
            return JSONResponse({"error": "no such gallery image"}, status_code=404)
        return FileResponse(server.gallery[index])

    return app
