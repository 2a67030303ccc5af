"""Speed and memory figures for the README's performance section (issue 6), as ratios and numbers.

    python benchmarks/run.py                 # default weights, the quick set (a few minutes on 2 cores)
    python benchmarks/run.py --long          # adds talk memory on 10 and 60 minutes of audio (~35 min)
    python benchmarks/run.py --train         # adds a training step, fp32 against bf16 autocast (~3 min)
    python benchmarks/run.py --loader prep3/ # adds drawing a training batch against the step it feeds (~1 min)
    python benchmarks/run.py --live-seconds 600  # the Live tab in headless Chromium for 10 minutes
    python benchmarks/run.py --json out.json --markdown out.md --gallery DIR --weights W --device cuda

Each figure is measured here, never asserted: targets are printed beside them. Cold figures start a
fresh `s2tf` process; warm ones reuse one loaded model. Memory is the peak RSS of a child process.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _s2tf() -> list[str]:
    return [sys.executable, "-m", "s2tf_cli"]


def machine() -> dict:
    import torch

    import s2tf_cli

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "s2tf": s2tf_cli.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}  # fmt: skip


def make_voice(folder: Path, seconds: float) -> Path:
    """The example voices end to end, repeated to `seconds` (real speech rhythm, not a tone)."""
    import soxr

    parts = []
    for name in ("voice_a.wav", "voice_b.wav"):
        w, sr = sf.read(EXAMPLES / name, dtype="float32")
        parts.append(soxr.resample(w, sr, 16000) if sr != 16000 else w)
    one = np.concatenate(parts)
    n = int(seconds * 16000)
    wave = np.tile(one, n // len(one) + 1)[:n]
    path = folder / f"voice_{seconds:g}s.wav"
    sf.write(path, wave, 16000, subtype="PCM_16")
    return path


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one child process (a fresh wrapper per run)."""
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], capture_output=True); "
               "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode); "
               "sys.stderr.write(r.stderr.decode()[-2000:])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    wall, rss, rc = out.stdout.split()
    if rc != "0":
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    return float(wall), int(rss) // 1024


def bench_face(model, weights: list[str], tmp: Path, voice: Path) -> dict:
    cold = [timed([*_s2tf(), "face", str(voice), "-o", str(tmp / "f.png"), *weights])[0] for _ in range(3)]
    model.face(voice)
    warm = []
    for _ in range(10):
        t = time.perf_counter()
        model.face(voice)
        warm.append(time.perf_counter() - t)
    return {"face cold command s": statistics.median(cold), "face warm ms": 1000 * statistics.median(warm)}


def bench_talk(model, weights: list[str], tmp: Path, voice: Path, seconds: float) -> dict:
    runs = []
    for _ in range(3):  # the median of three: a shared machine's speed drifts by ~20 % from minute to minute
        t = time.perf_counter()
        n, frames = model.talk_frames(voice)
        for _ in frames:
            pass
        runs.append(time.perf_counter() - t)
    gen = statistics.median(runs)
    t = time.perf_counter()
    model.talk(voice, tmp / "warm.mp4")
    whole = time.perf_counter() - t
    cold, rss = timed([*_s2tf(), "talk", str(voice), "-o", str(tmp / "t.mp4"), *weights])
    return {"talk frames": n, "talk frames/s (generation)": n / gen, "talk RTF generation": gen / seconds,
            "talk RTF warm, with MP4": whole / seconds, "talk cold command / clip": cold / seconds,
            f"talk peak RSS MB ({seconds:g} s)": rss}  # fmt: skip


def bench_stream(model, voice: Path, seconds: float) -> dict:
    """`talk - --stream` in-process: 40 ms chunks pushed as fast as they are taken. Latency from a sound to
    its frame = the look-ahead a frame waits for + the time its chunk takes (the 95th percentile)."""
    import numpy as np

    from s2tf_cli import audio as audio_io
    from s2tf_cli.live import LiveTalker

    wave = audio_io.load_audio(voice, model.cfg.audio.sample_rate)
    talker = LiveTalker(model, fps=25.0)
    chunk, spent = 640, []
    frames = 0
    for k in range(0, len(wave), chunk):
        t = time.perf_counter()
        frames += len(talker.push(wave[k : k + chunk]))
        spent.append(time.perf_counter() - t)
    frames += len(talker.close())
    p95 = float(np.percentile(spent, 95))
    return {"stream frames": frames, "stream RTF": sum(spent) / seconds, "stream chunk ms p95 (40 ms audio)": 1000 * p95,
            "stream latency ms (look-ahead + chunk p95)": 1000 * (talker.lookahead_s + p95)}  # fmt: skip


def live_in_browser(model, wav: Path, seconds: float, chromium: str, record: bool = False) -> dict:
    """The Live tab end to end: serve `model`, open the page in headless Chromium whose fake microphone
    plays `wav` (looping), press Start live, let it run `seconds`, press Stop. Returns the page's figures
    (frames drawn, sound-to-face latencies in ms, the server's end message), the server process's RSS (MB)
    once a second, and with `record` the frames drawn (index, time s, RGB) and the audio the page sent."""
    import base64
    import io
    import socket
    import threading

    import uvicorn
    from PIL import Image
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    from s2tf_cli.web.app import ServeLimits, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(model, ServeLimits()), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    rss, sampling = [], threading.Event()

    def sample_rss() -> None:
        while not sampling.wait(1.0):
            rss.append(int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6)

    threading.Thread(target=sample_rss, daemon=True).start()
    args = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}", "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=args)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/" + ("?record" if record else ""))
            page.click("#live")
            page.wait_for_function("() => window.s2tfLive.ready || window.s2tfLive.error", timeout=60_000)
            time.sleep(seconds)
            page.click("#live")
            page.wait_for_function("() => window.s2tfLive.end || window.s2tfLive.error", timeout=60_000)
            try:  # the end message can overtake the last frames' decoding: let every sent frame land first
                page.wait_for_function(
                    "() => window.s2tfLive.error || s2tfLive.frames >= s2tfLive.end.sent", timeout=5_000
                )
            except PlaywrightTimeout:
                pass  # a frame that never lands is the caller's to count
            out = page.evaluate("""() => ({frames: s2tfLive.frames, latencies: s2tfLive.latencies, end: s2tfLive.end,
                                          error: s2tfLive.error, rate: s2tfLive.rate, stats: document.getElementById('livestats').textContent})""")
            if record:
                got = page.evaluate("""() => ({
                    frames: s2tfLive.record.map(r => [r.index, r.t, btoa(Array.from(new Uint8Array(r.jpeg), c => String.fromCharCode(c)).join(''))]),
                    audio: btoa(Array.from(new Uint8Array(s2tfLive.sentAudio.buffer, 0, 2 * Math.min(s2tfLive.sent, s2tfLive.sentAudio.length)), c => String.fromCharCode(c)).join(''))})""")
                out["recorded"] = [(i, t, np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")))
                                   for i, t, b in got["frames"]]  # fmt: skip
                out["audio"] = np.frombuffer(base64.b64decode(got["audio"]), "<i2").astype(np.float32) / 32768
            out["screenshot"] = page.screenshot(full_page=True)
            browser.close()
    finally:
        sampling.set()
        server.should_exit = True
        thread.join(timeout=10)
    out["rss MB"] = rss
    return out


def bench_live_server(model, minutes: float, speed: float = 3.0) -> dict:
    """The Live WebSocket without a browser: a real recording sent `speed` times faster than spoken (under
    the server's backlog limit) for `minutes` of audio, each frame acknowledged as it comes; the server's RSS
    (this process) after each pass of the recording."""
    import json as json_
    import socket
    import threading

    import uvicorn
    from websockets.sync.client import connect

    from s2tf_cli.web.app import ServeLimits, create_app

    wav = Path(__file__).resolve().parent.parent / "tests" / "data" / "librispeech-1034-121119-0000-7s.wav"
    pcm = sf.read(wav, dtype="int16")[0].tobytes()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(model, ServeLimits()), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    got = [0]
    with connect(f"ws://127.0.0.1:{port}/api/live", max_size=None) as ws:
        ws.send(json_.dumps({"start": {"sample_rate": 16000}}))
        ws.recv()

        def page() -> None:
            from websockets.exceptions import ConnectionClosed

            for message in ws:
                if isinstance(message, str):
                    return
                got[0] += 1
                try:
                    ws.send(json_.dumps({"ack": int.from_bytes(message[:4], "little")}))
                except ConnectionClosed:  # the last frames can come after the server said "end" and closed
                    return

        reader = threading.Thread(target=page, daemon=True)
        reader.start()
        rss, sent, t0 = [], 0, time.perf_counter()
        while sent < minutes * 60 * 16000:
            for k in range(0, len(pcm), 640):
                ws.send(pcm[k : k + 640])
                sent += 320
                time.sleep(max(0.0, t0 + sent / 16000 / speed - time.perf_counter()))
            rss.append(int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6)
        ws.send(json_.dumps({"stop": True}))
        reader.join(timeout=60)
    server.should_exit = True
    per_pass = len(pcm) / 2 / 16000 / 60  # minutes of audio a pass
    first = min(len(rss) - 1, int(round(1 / per_pass)))
    return {f"live server RSS MB (after 1 min of audio, after {minutes:g} min; sent at {speed:g}x)": [
                round(rss[first], 1), round(rss[-1], 1)],
            "live server frames received": got[0]}  # fmt: skip


def _slope_per_min(samples: list[float]) -> float:
    """Least-squares growth of once-a-second samples, per minute."""
    if len(samples) < 2:
        return 0.0
    return round(float(np.polyfit(np.arange(len(samples)), samples, 1)[0]) * 60, 2)


def bench_live(model, seconds: float, chromium: str | None) -> dict:
    """The Live tab in headless Chromium with a real recording as its microphone: frames drawn per second,
    sound-to-face latency (median, 95th percentile), dropped frames, and the server's RSS over the run."""
    if not chromium:
        return {"live": "skipped: no chromium binary"}
    wav = Path(__file__).resolve().parent.parent / "tests" / "data" / "librispeech-1034-121119-0000-7s.wav"
    res = live_in_browser(model, wav, seconds, chromium)
    lat = np.array(res["latencies"])
    rss = res["rss MB"]
    return {f"live frames/s drawn ({seconds:g} s)": res["frames"] / seconds,
            "live latency ms median": float(np.median(lat)), "live latency ms p95": float(np.percentile(lat, 95)),
            "live frames dropped": res["end"]["dropped"], "live frames made": res["end"]["frames"],
            "live server RSS MB (after 1 min, at the end)": [round(rss[min(59, len(rss) - 1)], 1), round(rss[-1], 1)],
            "live server RSS growth MB/min (second half)": _slope_per_min(rss[len(rss) // 2 :])}  # fmt: skip


def bench_precision(model, voice: Path) -> dict:
    """Generation frames/s of the same clip in fp32 and bf16 (interleaved, median of three each)."""
    from s2tf_cli.pipeline import S2TF

    models = {p: S2TF(model.model, model.device, model.source, precision=p) for p in ("fp32", "bf16")}
    runs: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(3):
        for name, m in models.items():
            t = time.perf_counter()
            n, frames = m.talk_frames(voice)
            for _ in frames:
                pass
            runs[name].append(n / (time.perf_counter() - t))
    return {f"talk frames/s ({name})": statistics.median(r) for name, r in runs.items()}


def bench_retrieve(model, weights: list[str], tmp: Path, voice: Path, source: Path | None, count: int) -> dict:
    """`count` gallery images: the first of `source` (linked, searched recursively), or variants of the
    example pose. The first command indexes them; the repeat finds them in the index (cold and warm)."""
    gallery = tmp / "gallery"
    gallery.mkdir()
    if source is not None:
        picked = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        for i, p in enumerate(picked[:count]):
            (gallery / f"{i:05d}{p.suffix.lower()}").symlink_to(p.resolve())
    else:
        from PIL import Image, ImageEnhance, ImageOps

        base = Image.open(EXAMPLES / "pose.jpg").convert("RGB")
        for i in range(count):
            im = ImageEnhance.Brightness(ImageOps.mirror(base) if i % 2 else base).enhance(0.7 + 0.6 * i / count)
            im.save(gallery / f"{i:04d}.jpg", quality=90)
    files = sorted(gallery.iterdir())
    cmd = [*_s2tf(), "retrieve", str(voice), "--gallery", str(gallery), "--json", *weights]
    first, _ = timed(cmd)
    repeat, _ = timed(cmd)
    t = time.perf_counter()
    model.retrieve(voice, files)
    warm = time.perf_counter() - t
    return {"gallery files": len(files), "retrieve first s": first, "retrieve gallery faces/s": len(files) / first,
            "retrieve repeat query s": repeat, "retrieve repeat query warm s": warm}  # fmt: skip


def bench_floor(model) -> dict:
    """Generator FLOPs per frame against this machine's measured matmul rate."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.cfg
    f_id = torch.nn.functional.normalize(torch.randn(1, cfg.id_dim, device=model.device), dim=-1)
    f_ir = torch.zeros(1, cfg.ir_dim, device=model.device)
    net = copy.deepcopy(model.model).requires_grad_(False)  # the counter's module hooks want plain tensors
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.generate(f_id, f_ir)
    flops = counter.get_total_flops()

    def matmul_rate(dtype) -> float:
        a = torch.randn(1024, 1024, device=model.device).to(dtype)
        with torch.inference_mode():
            a @ a
            t = time.perf_counter()
            for _ in range(20):
                a @ a
            return 20 * 2 * 1024**3 / (time.perf_counter() - t)

    rate = matmul_rate(torch.float32)
    out = {"generator GFLOP/frame": flops / 1e9, "matmul GFLOP/s": rate / 1e9,
           "floor frames/s (matmul rate / FLOPs)": rate / max(flops, 1)}  # fmt: skip
    if model.dtype is not None:  # the per-frame networks run in bf16: their floor is the bf16 rate
        rate = matmul_rate(model.dtype)
        out |= {"matmul GFLOP/s (bf16)": rate / 1e9, "floor frames/s (bf16)": rate / max(flops, 1)}
    return out


def synthetic_batch(module, batch: int, content_negatives: int = 4, seed: int = 0) -> dict:
    """Random frames and audio in the shapes `draw_batch` gives a `TrainingModule`: timing needs no corpus."""
    import torch

    g = torch.Generator().manual_seed(seed)
    cfg = module.cfg.model
    a, size = cfg.audio, cfg.image_size
    span = a.content_window * a.hop_length + 2 * module.context * a.hop_length
    frames = {k: torch.rand(batch, 3, size, size, generator=g) * 2 - 1 for k in ("first", "frame", "frame_aug",
                                                                                 "clip_first")}  # fmt: skip
    return {**frames, "label": torch.arange(batch) % cfg.num_identities,
            "id_audio": torch.randn(batch, int(a.identity_window_s * a.sample_rate), generator=g) * 0.1,
            "content_audio": torch.randn(batch, span, generator=g) * 0.1,
            "neg_audio": torch.randn(batch * content_negatives, span, generator=g) * 0.1}  # fmt: skip


def bench_train_step(model_cfg, batch: int = 16, repeats: int = 4) -> dict:
    """Seconds per generator step (forward + backward) in the visual and finetune stages, fp32 against bf16
    autocast, alternated so that both see the same machine load."""
    import torch

    from s2tf_cli.training.config import TrainConfig
    from s2tf_cli.training.stages import TrainingModule

    torch.manual_seed(0)
    module = TrainingModule(TrainConfig(model=model_cfg), None)
    data = synthetic_batch(module, batch, module.cfg.content_negatives)
    out: dict = {}
    for stage, phase in (("visual", ""), ("finetune", "audio-id")):
        module.set_stage(stage)
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for i in range(repeats + 1):
            for mode in times:
                t0 = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
                    loss, _, _ = module(data, stage, phase, "g")
                loss.backward()
                module.zero_grad(set_to_none=True)
                if i:  # the first of each is warm-up
                    times[mode].append(time.perf_counter() - t0)
        fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
        out[f"train step s, {stage}, batch {batch} (fp32)"] = fp32
        out[f"train step s, {stage}, batch {batch} (bf16 autocast)"] = bf16
        out[f"train step bf16 speed-up, {stage}"] = fp32 / bf16
    return out


def bench_loader(corpus_dir: Path, steps: int = 30, model_cfg=None) -> dict:
    """Drawing a batch from a prepared corpus (decoding, augmentation) against the GAN step of the
    Voice2Face baseline it feeds, the cheapest training step here: the loader's share of a step."""
    import torch

    from s2tf_cli.baselines.train_voice2face import (
        Voice2FaceRecipe,
        Voice2FaceTraining,
        _gan_step,
        batch_spec,
        optimizers,  # fmt: skip
    )
    from s2tf_cli.training.corpus import Corpus, draw_batch

    recipe = Voice2FaceRecipe(model=model_cfg) if model_cfg is not None else Voice2FaceRecipe()
    corpus = Corpus(corpus_dir, "train")
    torch.manual_seed(0)
    module = Voice2FaceTraining(recipe.model)
    opts, spec = optimizers(module, recipe), batch_spec(recipe)
    _gan_step(module, draw_batch(corpus, spec, 0, 10_000), opts)  # warm-up
    t0 = time.perf_counter()
    for step in range(steps):
        batch = draw_batch(corpus, spec, 0, step)
    t_draw = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    for _ in range(steps):
        _gan_step(module, batch, opts)
    t_step = (time.perf_counter() - t0) / steps
    return {
        "baseline batch draw s": t_draw,
        "baseline GAN step s (batch ready)": t_step,
        "batch draw share of a baseline step": t_draw / (t_draw + t_step),
    }


def profile_top(work, top: int = 3) -> list[str]:
    """The `top` operators by self CPU time while `work()` runs (torch.profiler), as shares of the total."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        work()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    return [f"{e.key} {100 * e.self_cpu_time_total / total:.0f} %" for e in rows]


def profile_talk(model, voice: Path, top: int = 3) -> list[str]:
    return profile_top(lambda: [None for _ in model.talk_frames(voice)[1]], top)


TARGETS = {"talk RTF generation": "<= 0.25", "talk cold command / clip": "<= 0.6 (10 s clip)",
           "face cold command s": "<= 3", "face warm ms": "<= 100", "retrieve gallery faces/s": ">= 30",
           "retrieve repeat query s": "<= 1", "retrieve repeat query warm s": "<= 1", "talk peak RSS MB (60 min)": "<= 1500, flat in length",
           "stream latency ms (look-ahead + chunk p95)": "<= 300", "stream RTF": "< 1"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (per-frame networks)")
    ap.add_argument(
        "--gallery",
        type=Path,
        default=None,
        help="take the gallery from this face folder (default: variants of examples/pose.jpg)",
    )
    ap.add_argument("--gallery-size", type=int, default=60, help="gallery images (the first N of --gallery)")
    ap.add_argument("--long", action="store_true", help="also talk memory on 10 and 60 minutes of audio")
    ap.add_argument("--memory-fps", type=float, default=25.0,
                    help="frame rate of the 10 and 60 minute runs (frames are made a batch at a time, so memory "
                         "does not depend on it; a lower rate only shortens the run)")  # fmt: skip
    ap.add_argument("--train", action="store_true", help="also a training step of the weights' model, fp32 vs bf16")
    ap.add_argument(
        "--loader",
        type=Path,
        default=None,
        metavar="CORPUS",
        help="also drawing a training batch against the step it feeds, on this prepared corpus (~1 min)",
    )
    ap.add_argument(
        "--live-seconds",
        type=float,
        default=20.0,
        help="the Live tab in headless Chromium this long (600 for issue 34's 10 minutes; 0 skips it)",
    )
    ap.add_argument(
        "--live-server-minutes",
        type=float,
        default=0.0,
        help="also the Live WebSocket without a browser for this many minutes of audio, sent 3x faster",
    )
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()

    from s2tf_cli.pipeline import S2TF

    weights = ["--weights", args.weights] if args.weights else []
    weights += ["--device", args.device]
    per_frame = [*weights, "--precision", args.precision]  # face and talk take it; retrieve has no per-frame nets
    tmp = Path(tempfile.mkdtemp(prefix="s2tf-bench-"))
    os.environ["S2TF_CACHE"] = str(tmp / "cache")  # a fresh gallery index: the first query really indexes
    try:
        model = S2TF.from_pretrained(args.weights, device=args.device, precision=args.precision)
        voice10 = make_voice(tmp, 10)
        res: dict = {"machine": machine(), "weights": model.weights_label, "image size": model.cfg.image_size,
                     "precision": model.precision}  # fmt: skip
        res.update(bench_face(model, per_frame, tmp, EXAMPLES / "voice_a.wav"))
        res.update(bench_talk(model, per_frame, tmp, voice10, 10))
        res.update(bench_precision(model, voice10))
        res.update(bench_stream(model, voice10, 10))
        if args.live_server_minutes > 0:
            res.update(bench_live_server(model, args.live_server_minutes))
        if args.live_seconds > 0:
            res.update(
                bench_live(model, args.live_seconds, shutil.which("chromium") or shutil.which("chromium-browser"))
            )
        res.update(bench_retrieve(model, weights, tmp, EXAMPLES / "voice_a.wav", args.gallery, args.gallery_size))
        res.update(bench_floor(model))
        if args.train:
            res.update(bench_train_step(model.cfg))
        if args.loader:
            res.update(bench_loader(args.loader))
        res["talk profile (top self CPU)"] = profile_talk(model, voice10)
        res["face warm profile (top self CPU)"] = profile_top(lambda: model.face(EXAMPLES / "voice_a.wav"))
        for minutes in [1, 10, 60] if args.long else [1]:  # the whole command, streamed from disk
            voice = make_voice(tmp, 60 * minutes)
            fps = ["--fps", str(args.memory_fps)] if minutes > 1 else []
            wall, rss = timed([*_s2tf(), "talk", str(voice), "-o", str(tmp / "long.mp4"), *fps, *per_frame])
            res[f"talk peak RSS MB ({minutes} min)"] = rss
            rate = f", {args.memory_fps:g} fps" if fps else ""
            res[f"talk cold wall s ({minutes} min{rate})"] = wall
            voice.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:  # first: the figures are kept whatever the table makes of them
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    table = to_markdown(res)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")


def _shown(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def to_markdown(res: dict) -> str:
    lines = [f"machine: {', '.join(f'{k} {v}' for k, v in res['machine'].items())}; weights {res['weights']}, "
             f"{res['image size']} px, precision {res.get('precision', 'fp32')}", "", "| figure | measured | target |",
             "|---|---|---|"]  # fmt: skip
    for key, value in res.items():
        if key in ("machine", "weights", "image size", "precision"):
            continue
        shown = ", ".join(_shown(v) for v in value) if isinstance(value, list) else _shown(value)
        lines.append(f"| {key} | {shown} | {TARGETS.get(key, '')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
