"""The jobs users run: `face`, `talk`, `retrieve`, and the weights commands `download`, `info`, `push`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .. import __version__
from ..errors import InputError, S2TFError, UsageError
from .common import (
    IMAGE_SUFFIXES,
    CacheOpt,
    DeviceOpt,
    PoseOpt,
    PrecisionOpt,
    SeedOpt,
    VerboseOpt,
    WeightsOpt,
    _load,
    _progress,
    _setup_logging,
    app,
    err,
    handle_errors,
    log,
)


@app.command()
@handle_errors
def face(
    voices: Annotated[list[Path], typer.Argument(help="Voice recording(s): WAV, FLAC, OGG, MP3, M4A, video...")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file (or a folder for several voices).")],
    pose: PoseOpt = None,
    seed: SeedOpt = None,
    n_samples: Annotated[int, typer.Option("--n-samples", "-n", help="How many faces per voice.")] = 1,
    size: Annotated[int | None, typer.Option("--size", help="Output size in pixels (default: model's).")] = None,
    grid: Annotated[bool, typer.Option("--grid", help="Write the samples as one grid image.")] = False,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    verbose: VerboseOpt = False,
) -> None:
    """A frontal face (or one in the pose of --pose) estimated from the voice."""
    _setup_logging(verbose)
    from ..outputs import check_output

    if n_samples < 1:
        raise UsageError(f"--n-samples must be at least 1, not {n_samples}")
    if size is not None and not (16 <= size <= 4096):
        raise UsageError(f"--size must be between 16 and 4096, not {size}")
    from ..audio import check_readable

    for v in voices:
        check_readable(v)
    if pose is not None and not pose.is_file():
        raise UsageError(f"{pose}: no such file")
    if len(voices) > 1:
        if output.suffix.lower() == ".png" or (output.exists() and not output.is_dir()):
            raise UsageError(f"{output}: several voices need an output folder, not a file")
        output.mkdir(parents=True, exist_ok=True)
        targets = [output / f"{Path(v).stem}.png" for v in voices]
    else:
        targets = [output]
    for t in targets:
        check_output(t, (".png",))

    model = _load(weights, device, precision=precision)
    from .. import images
    from ..outputs import provenance, write_bytes_atomic

    meta = provenance(model.weights_label, "face")
    refused: list[InputError] = []
    with _progress() as bar:
        task = bar.add_task("generating faces", total=len(voices) * n_samples)
        for voice, target in zip(voices, targets):
            try:
                faces = model.face(voice, pose=pose, seed=seed, n_samples=n_samples)
            except InputError as exc:
                if len(voices) == 1:
                    raise
                # one refused voice does not stop a batch (like cp with several files): said, then the rest
                err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
                refused.append(exc)
                bar.advance(task, n_samples)
                continue
            bar.advance(task, len(faces))
            if size:
                faces = [images.resize(f, size) for f in faces]
            if grid and len(faces) > 1:
                faces = [images.grid(faces)]
            for k, img in enumerate(faces):
                path = target if k == 0 else target.with_name(f"{target.stem}-{k}{target.suffix}")
                write_bytes_atomic(path, images.png_bytes(img, meta))
                typer.echo(str(path))
    if refused:
        raise InputError(f"{len(refused)} of {len(voices)} voices refused (above); the other faces were written")


@app.command()
@handle_errors
def talk(
    voice: Annotated[Path, typer.Argument(help="Voice recording ('-' with --stream: PCM on stdin).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="MP4 file to write.")] = None,
    pose: Annotated[
        Path | None,
        typer.Option(
            "--pose",
            help="Reference face image whose head pose is kept, "
            "or a video (.mp4, .mov, .mkv, .webm, .avi) whose head motion is followed frame by frame "
            "(a shorter video holds its last pose).",
        ),
    ] = None,
    fps: Annotated[float, typer.Option("--fps", help="Video frame rate.")] = 25.0,
    size: Annotated[
        int | None, typer.Option("--size", help="The MP4's side in pixels, even (default: the model's).")
    ] = None,
    motion: Annotated[
        str,
        typer.Option(
            "--motion",
            help="natural: the eyes blink and glance, and the head turns and nods with the voice around the "
            "still pose (weights that carry pose: see `s2tf info`); none: all still. A pose video drives the "
            "head itself.",
        ),
    ] = "natural",
    seed: SeedOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    stream: Annotated[
        bool,
        typer.Option(
            "--stream",
            help="With voice '-': read 16 kHz mono 16-bit PCM on stdin and write the frames to stdout as the "
            "audio arrives (see --stream-format).",
        ),
    ] = False,
    stream_format: Annotated[
        str,
        typer.Option(
            "--stream-format",
            help="rgb24: raw frames (size x size x 3 bytes each, --fps a second); mp4: a fragmented MP4 "
            "(H.264 + the voice as AAC) that players and ffmpeg read as it grows.",
        ),
    ] = "rgb24",
    verbose: VerboseOpt = False,
) -> None:
    """The voice's face talking, lip-synced, as an H.264 MP4 with the voice as its sound track."""
    _setup_logging(verbose)
    from ..audio import check_readable
    from ..motion import check_motion
    from ..outputs import check_output

    check_motion(motion)
    if stream or str(voice) == "-":
        if not (stream and str(voice) == "-"):
            raise UsageError("--stream reads the voice from stdin: give '-' as the voice, and --stream with it")
        if pose is not None and not pose.is_file():
            raise UsageError(f"{pose}: no such file")
        if size is not None:
            raise UsageError("--size is for an MP4 file; --stream writes frames at the model's size")
        if stream_format not in ("rgb24", "mp4"):
            raise UsageError(f"--stream-format must be rgb24 or mp4, not {stream_format!r}")
        return _talk_stream(pose, fps, seed, weights, device, precision, stream_format, motion)
    if output is None:
        raise UsageError("talk needs --output/-o (an .mp4 file), or '-' --stream for raw frames on stdout")
    check_readable(voice)
    if pose is not None and not pose.is_file():
        raise UsageError(f"{pose}: no such file")
    if not (0 < fps <= 120):
        raise UsageError(f"--fps must be between 0 and 120, not {fps}")
    if size is not None and (not (16 <= size <= 4096) or size % 2):
        raise UsageError(f"--size must be an even number of pixels between 16 and 4096, not {size}")
    check_output(output, (".mp4",))
    model = _load(weights, device, precision=precision)
    with _progress() as bar:
        task = bar.add_task("reading the voice", total=None)
        frames = model.talk(
            voice, output, pose=pose, fps=fps, seed=seed, motion=motion, size=size,
            progress=lambda n: bar.advance(task, n),
            on_frames=lambda n: bar.update(task, total=n, description="rendering frames"),
        )  # fmt: skip
    typer.echo(str(output))
    log.info("%d frames at %g fps", frames, fps)


def _talk_stream(
    pose: Path | None,
    fps: float,
    seed: int | None,
    weights,
    device: str,
    precision: str,
    form: str = "rgb24",
    motion: str = "natural",
) -> None:
    """`talk - --stream`: PCM in, frames (or a fragmented MP4) out, as it comes (plugs into ffmpeg, a
    player or a virtual camera)."""
    import sys

    from ..face_track import is_video
    from ..live import LiveTalker, PCMResampler

    if not (0 < fps <= 120):
        raise UsageError(f"--fps must be between 0 and 120, not {fps}")
    if pose is not None and is_video(pose):
        raise UsageError(f"{pose}: --stream takes a still --pose image")
    model = _load(weights, device, precision=precision)
    talker = LiveTalker(model, fps=fps, pose=pose, seed=seed, motion=motion)
    size = model.cfg.image_size
    log.info("streaming %dx%d %s at %g fps; look-ahead %.0f ms", size, size,
             "RGB24 frames" if form == "rgb24" else "fragmented MP4", fps, 1000 * talker.lookahead_s)  # fmt: skip
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    mp4 = None
    if form == "mp4":
        from ..outputs import provenance
        from ..video import FragmentedMP4

        mp4 = FragmentedMP4(stdout, size, fps, model.cfg.audio.sample_rate, provenance(model.weights_label, "talk"))

    def emit(frames: list) -> None:
        for frame in frames:
            if mp4 is not None:
                mp4.frame(frame)
            else:
                stdout.write(frame.tobytes())
        if mp4 is None:
            stdout.flush()

    chunk = 2 * int(model.cfg.audio.sample_rate * 0.04)  # 40 ms of 16-bit samples
    decode = PCMResampler(model.cfg.audio.sample_rate, model.cfg.audio.sample_rate)
    while data := (stdin.read1(chunk) if hasattr(stdin, "read1") else stdin.read(chunk)):
        if mp4 is not None:
            mp4.audio(data)  # ffmpeg reads the bytes as one stream: a split sample joins there too
        emit(talker.push(decode(data)))
    emit(talker.close())
    if mp4 is not None:
        mp4.close()


def _gallery_files(folder: Path) -> list[Path]:
    if not folder.exists():
        raise UsageError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise UsageError(f"{folder}: --gallery must be a folder of face images")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    for p in files:
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            log.warning("%s: skipped (not an image file)", p)
    return [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]


def _cached_answer(voice: Path, files: list[Path], source, aligned: bool):
    """(matches, skipped) from the gallery and voice indexes when they hold everything, else None."""
    from ..gallery_index import cached_retrieval

    answer = cached_retrieval(voice, files, source.sha256, aligned) if source.sha256 else None
    log.info("repeat query: answered from the index" if answer else "query: loading the model")
    return answer


@app.command()
@handle_errors
def retrieve(
    voice: Annotated[Path, typer.Argument(help="Voice recording.")],
    gallery: Annotated[Path, typer.Option("--gallery", "-g", help="Folder of face images (searched recursively).")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many matches to show.")] = 10,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the top K as JSON on stdout: {voice, ranked, skipped, top_k, matches: [{path, score, rank}]}.",
        ),
    ] = False,
    sheet: Annotated[Path | None, typer.Option("--sheet", help="Write a contact sheet PNG of the top K.")] = None,
    aligned: Annotated[bool, typer.Option("--aligned", help="Gallery images are already face crops.")] = False,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            help="Keep each gallery face's embedding "
            "($S2TF_CACHE, default ~/.cache/s2tf) so repeat queries skip detection.",
        ),
    ] = True,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    verbose: VerboseOpt = False,
) -> None:
    """Rank the faces in your own gallery by how well they match the voice (identity space cosine)."""
    _setup_logging(verbose)
    from ..audio import check_readable
    from ..outputs import check_output

    check_readable(voice)
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {top_k}")
    if sheet is not None:
        check_output(sheet, (".png",))
    files = _gallery_files(gallery)
    if not files:
        raise UsageError(f"{gallery}: no image files found")
    from ..hub import resolve

    source = resolve(weights)  # checked once: its sha256 keys the indexes, and the model loads from it
    answer = _cached_answer(voice, files, source, aligned) if cache and sheet is None else None
    if answer is not None:  # a repeat query: answered from the indexes, no model loaded
        matches, skipped = answer
    else:
        model = _load(source, device)
        with _progress() as bar:
            task = bar.add_task("embedding gallery", total=len(files))
            matches, skipped = model.retrieve(voice, files, aligned=aligned, cache=cache, remember_voice=cache,
                                              progress=lambda n: bar.advance(task, n))  # fmt: skip
    for s in skipped:
        log.warning("skipped %s", s.reason)
    if skipped:
        log.warning("%d of %d gallery files skipped", len(skipped), len(files))
    if not matches:
        raise UsageError(f"{gallery}: no usable face images ({len(skipped)} skipped)")
    if as_json:
        rows = [{"path": str(m.path), "score": round(m.score, 6), "rank": m.rank} for m in matches[:top_k]]
        typer.echo(json.dumps({"voice": str(voice), "ranked": len(matches), "skipped": len(skipped), "top_k": top_k,
                               "matches": rows}, indent=2))  # fmt: skip
    else:
        from rich.table import Table

        table = Table(title=f"{voice.name}: gallery ranked by voice-face identity similarity")
        table.add_column("rank", justify="right")
        table.add_column("score", justify="right")
        table.add_column("image")
        for m in matches[:top_k]:
            table.add_row(str(m.rank), f"{m.score:.3f}", str(m.path))
        Console().print(table)
    if sheet is not None:
        from ..images import png_bytes
        from ..outputs import provenance, write_bytes_atomic
        from ..sheets import contact_sheet

        img = contact_sheet(matches[:top_k], model.cfg.image_size)
        write_bytes_atomic(sheet, png_bytes(img, provenance(model.weights_label, "retrieve")))
        log.info("contact sheet: %s", sheet)


@app.command()
@handle_errors
def download(
    weights: Annotated[str, typer.Argument(help="Registry name or Hub id org/name[@revision].")],
    cache_dir: CacheOpt = None,
) -> None:
    """Fetch weights into the Hugging Face cache (for offline use later)."""
    from ..hub import resolve

    with err.status(f"fetching {weights}", spinner="dots"):
        source = resolve(weights, cache_dir=cache_dir)
    typer.echo(str(source.folder))


@app.command()
@handle_errors
def info(weights: WeightsOpt = None, device: DeviceOpt = "auto", cache_dir: CacheOpt = None) -> None:
    """Which weights would be used, their preset, sizes, revision and checksum, and the device. Reads the
    weights folder only: neither torch nor the model is loaded."""
    from ..errors import WeightsError
    from ..hub import folder_info, resolve

    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"--device must be auto, cpu or cuda, not {device!r}")
    rows = {"s2tf": __version__}
    try:
        rows.update({k: str(v) for k, v in folder_info(resolve(weights, cache_dir=cache_dir)).items()})
    except WeightsError as exc:
        rows["weights"] = f"not available: {exc}"
    gpu = any(Path(p).exists() for p in ("/dev/nvidiactl", "/proc/driver/nvidia/version"))
    rows["device"] = (
        device if device != "auto" else ("cuda (auto: an NVIDIA driver is present)" if gpu else "cpu (auto)")
    )
    if rows["device"].startswith("cpu"):
        rows["precision"] = "bf16 (auto: native on this CPU)" if _cpu_native_bf16() else "fp32 (auto)"
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        typer.echo(f"{key:<{width}}  {value}")


def _cpu_native_bf16() -> bool:
    """precision.native_bf16 for the CPU, from /proc/cpuinfo's flags instead of torch's probes."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_tile" in flags


@app.command()
@handle_errors
def push(
    folder: Annotated[Path, typer.Argument(help="A weights folder (config.json, model.safetensors, README.md).")],
    repo_id: Annotated[str, typer.Argument(help="Hub repo id, org/name.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo as private.")] = False,
) -> None:
    """Publish a weights folder to the Hugging Face Hub."""
    from ..hub import push_folder

    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder")
    try:
        revision = push_folder(folder, repo_id, private=private)
    except S2TFError:
        raise
    except Exception as exc:  # network and authentication errors from huggingface_hub
        raise UsageError(f"{repo_id}: push failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    typer.echo(f"{repo_id}@{revision}")
