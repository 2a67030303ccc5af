"""Researcher commands: `s2tf data synth|prepare`, `s2tf train`, `s2tf export` (thin, like cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..corpus_format import is_corpus
from ..errors import MissingDependencyError, UsageError
from .common import _progress, _setup_logging, app, err, handle_errors, sources_and_output

data_app = typer.Typer(help="Build a training corpus: synthesise one, or prepare any VoxCeleb2-layout tree.",
                       no_args_is_help=True)  # fmt: skip
app.add_typer(data_app, name="data")


@data_app.command("synth")
@handle_errors
def data_synth(
    out: Annotated[Path, typer.Argument(help="Folder to write ROOT/<identity>/<video>/<clip>.mp4 into.")],
    faces: Annotated[
        list[Path],
        typer.Option("--faces", help="Face folder (identity sub-folders or one photo per person); repeatable."),
    ] = [],  # noqa: B006
    real_voices: Annotated[
        list[Path],
        typer.Option(
            "--real-voices",
            help="Real voice + face folder (RAVDESS layout: <person>/face.png + recordings); repeatable.",
        ),
    ] = [],  # noqa: B006
    identities: Annotated[int, typer.Option("--identities", "-n", help="Identities in all.")] = 200,
    clips: Annotated[int, typer.Option("--clips-per-identity", "-k", help="Clips per face identity.")] = 4,
    real_clips: Annotated[int, typer.Option("--real-clips-per-identity", help="Clips per real voice.")] = 20,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    face_voice: Annotated[
        float,
        typer.Option(
            "--face-voice",
            min=0.0,
            max=1.0,
            help="Share (0-1) of pitch, "
            "vocal-tract scale, tilt and rate set by the face's own embedding, "
            "beyond its gender and age labels; 0: labels and chance only.",
        ),
    ] = 0.0,
    workers: Annotated[int, typer.Option("--workers", "-j")] = 2,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Synthesise a talking-face corpus: real face photos, espeak-ng voices, mouths moving with speech."""
    _setup_logging(verbose)
    from ..data.synth import SynthOptions, choose_identities, synth_corpus

    if not faces and not real_voices:
        raise UsageError("give at least one --faces or --real-voices folder")
    for folder in [*faces, *real_voices]:
        if not folder.is_dir():
            raise UsageError(f"{folder}: no such folder")
    opts = SynthOptions(
        out,
        identities=identities,
        clips_per_identity=clips,
        real_clips_per_identity=real_clips,
        seed=seed,
        workers=workers,
        face_voice=face_voice,
    )
    total = len(choose_identities(faces, real_voices, identities, seed))
    with _progress() as bar:
        task = bar.add_task("synthesising identities", total=total)
        summary = synth_corpus(faces, real_voices, opts, progress=lambda n: bar.advance(task, n))
    typer.echo(" ".join(f"{k}={v}" for k, v in summary.items()))


@data_app.command("prepare")
@handle_errors
def data_prepare(
    root: Annotated[Path, typer.Argument(help="Raw tree: ROOT/<identity>/<video>/<clip>.mp4 (+ meta.csv).")],
    out: Annotated[Path, typer.Argument(help="Folder for shards, manifest.jsonl, skipped.csv, corpus.json.")],
    size: Annotated[int, typer.Option("--size", help="Face crop size (model image size; paper 224).")] = 128,
    workers: Annotated[int, typer.Option("--workers", "-j")] = 2,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Detect and crop faces per frame, resample to 25 fps and 16 kHz, split by identity (resumable)."""
    _setup_logging(verbose)
    from ..data.prepare import PrepareOptions, find_clips, prepare_corpus

    if not root.is_dir():
        raise UsageError(f"{root}: no such folder")
    clips = find_clips(root)
    if not clips:
        raise UsageError(f"{root}: no clips in the <identity>/<video>/<clip>.mp4 layout")
    with _progress() as bar:
        task = bar.add_task("preparing clips", total=len(clips))
        summary = prepare_corpus(PrepareOptions(root, out, size, workers), progress=lambda n: bar.advance(task, n))
    typer.echo(" ".join(f"{k}={v}" for k, v in summary.items()))


@data_app.command("photos")
@handle_errors
def data_photos(
    folders: Annotated[
        list[Path],
        typer.Argument(
            help="Face folders (identity sub-folders or one photo per person), then the output folder last."
        ),
    ],
    size: Annotated[int, typer.Option("--size", help="Face crop size (the talking corpus's).")] = 128,
    exclude: Annotated[
        list[Path],
        typer.Option(
            "--exclude",
            help="Corpus (raw tree or prepared) whose people "
            "to leave out, so its val/test people stay unseen; repeatable.",
        ),
    ] = [],  # noqa: B006
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many people (0: all).")] = 0,
    max_photos: Annotated[int, typer.Option("--max-photos", min=1, help="Photos per person.")] = 8,
    workers: Annotated[int, typer.Option("--workers", "-j")] = 2,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Crop face photos (no voices) into a corpus for stage 1's `extra_faces`: more people for G."""
    _setup_logging(verbose)
    from ..data.photos import PhotoOptions, photo_people, prepare_photos

    sources, out = sources_and_output(folders, "face")
    for folder in [*sources, *exclude]:
        if not folder.is_dir():
            raise UsageError(f"{folder}: no such folder")
    opts = PhotoOptions(out, size=size, max_photos=max_photos, limit=limit, exclude=list(exclude), workers=workers)
    people = photo_people(sources, opts)
    if not people:
        raise UsageError(f"{', '.join(map(str, sources))}: no photos of people outside the excluded corpora")
    with _progress() as bar:
        task = bar.add_task("cropping photos", total=len(people))
        summary = prepare_photos(sources, opts, progress=lambda n: bar.advance(task, n), people=people)
    typer.echo(" ".join(f"{k}={v}" for k, v in summary.items()))


@data_app.command("faces")
@handle_errors
def data_faces(
    folders: Annotated[
        list[Path],
        typer.Argument(
            help="Face folders (s2f, RAVDESS, identity sub-folders or one "
            "photo per person), then the output folder last."
        ),
    ],
    size: Annotated[int, typer.Option("--size", min=16, help="Face crop size in pixels.")] = 128,
    workers: Annotated[int, typer.Option("--workers", "-j", min=1)] = 2,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Crop every face photo into one array (faces.npy + faces.csv) for the GAN stage; validation people
    are marked and never trained on."""
    _setup_logging(verbose)
    from ..data.faceset import build_faceset, photos_in

    sources, out = sources_and_output(folders, "face")
    for folder in sources:
        if not folder.is_dir():
            raise UsageError(f"{folder}: no such folder")
    total = sum(len(photos_in(f)) for f in sources)
    if not total:
        raise UsageError(f"{', '.join(map(str, sources))}: no face photos found")
    with _progress() as bar:
        task = bar.add_task("cropping faces", total=total)
        summary = build_faceset(sources, out, size, workers, progress=lambda n: bar.advance(task, n))
    typer.echo(" ".join(f"{k}={v}" for k, v in summary.items()))


@data_app.command("pose")
@handle_errors
def data_pose(
    faceset: Annotated[Path, typer.Argument(help="Face set from `s2tf data faces`; pose.csv is written into it.")],
) -> None:
    """Head-pose labels (yaw, pitch, roll) for every photo of a face set, read by MediaPipe's FaceMesh, for
    recipes that teach f_ir pose (`faces.pose`). Needs mediapipe 0.10.14 (see the training docs)."""
    from ..data.pose_labels import FaceMeshPose, label_faceset

    if not (faceset / "faces.npy").is_file():
        raise UsageError(f"{faceset}: not a face set (run `s2tf data faces`)")
    try:
        estimator = FaceMeshPose()
    except ImportError as exc:
        raise MissingDependencyError(str(exc)) from None
    import numpy as np

    count = len(np.load(faceset / "faces.npy", mmap_mode="r"))
    with _progress() as bar:
        task = bar.add_task("reading head poses", total=count)
        summary = label_faceset(faceset, estimator, progress=lambda n: bar.advance(task, n))
    typer.echo(f"{faceset / 'pose.csv'}: " + " ".join(f"{k}={v}" for k, v in summary.items()))


@data_app.command("voices")
@handle_errors
def data_voices(
    folders: Annotated[
        list[Path],
        typer.Argument(help="Voice folders (s2f, RAVDESS, LibriSpeech layouts), then the output folder last."),
    ],
    ge2e: Annotated[Path, typer.Option("--ge2e", help="GE2E weights from `s2tf data ge2e`.")],
    augmented: Annotated[int, typer.Option("--augmented", min=0, help="Noisy, reverberant copies per clip.")] = 2,
    preset_name: Annotated[
        str, typer.Option("--preset", help="Model preset whose audio front end to use.")
    ] = "cpu-real",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """GE2E d-vectors of every real voice's identity windows, for training E_id^a's head; validation people
    are marked and never trained on."""
    _setup_logging(verbose)
    from ..config import ConfigError, preset
    from ..data.voiceset import build_voiceset, clips_in
    from ..models.s2tf import S2TFModel
    from ..training.trainer import load_speaker_backbone

    sources, out = sources_and_output(folders, "voice")
    if not ge2e.is_file():
        raise UsageError(f"{ge2e}: no such file (run `s2tf data ge2e`)")
    try:
        cfg = preset(preset_name)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if cfg.audio_identity.backbone != "ge2e":
        raise UsageError(f"preset {preset_name!r} has no GE2E speaker encoder")
    try:
        total = sum(len(clips_in(f)) for f in sources)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    model = S2TFModel(cfg).eval()
    load_speaker_backbone(model, str(ge2e))
    with _progress() as bar:
        task = bar.add_task("embedding voices", total=total)
        summary = build_voiceset(sources, out, model, augmented, seed, progress=lambda n: bar.advance(task, n))
    typer.echo(" ".join(f"{k}={v}" for k, v in summary.items()))


@data_app.command("ge2e")
@handle_errors
def data_ge2e(
    out: Annotated[Path, typer.Argument(help="Output .safetensors file (a recipe's audio_identity_init).")],
    source: Annotated[
        Path | None,
        typer.Option("--source", help="resemblyzer's pretrained.pt (default: the installed resemblyzer's)."),
    ] = None,
) -> None:
    """The pretrained GE2E speaker encoder (resemblyzer) as safetensors, for E_id^a's 'ge2e' backbone."""
    from ..data.ge2e import export_ge2e

    if out.suffix != ".safetensors":
        raise UsageError(f"{out}: the output must be a .safetensors file")
    summary = export_ge2e(out, source)
    typer.echo(f"{out}: " + " ".join(f"{k}={v}" for k, v in summary.items()))


@app.command("train")
@handle_errors
def train_cmd(
    config: Annotated[Path, typer.Argument(help="Training recipe (JSON, see configs/).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoints, metrics, samples.")],
    corpus: Annotated[Path | None, typer.Option("--corpus", help="Prepared corpus (overrides the config).")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop after this many steps in all.")] = None,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help="Continue from these weights (folder or Hub id; same model config) instead of a random start.",
        ),
    ] = None,
    cpu: Annotated[bool, typer.Option("--cpu", help="Train on the CPU even when CUDA is present.")] = False,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", help="Replace the recipe's seed (a replicate of one recipe); kept in the run's train_config.json."
        ),
    ] = None,
    extra_faces: Annotated[
        Path | None,
        typer.Option(
            "--extra-faces",
            help="Photo corpus (`s2tf data photos`) for the recipe's extra_faces (overrides the config).",
        ),
    ] = None,
    faceset: Annotated[
        Path | None,
        typer.Option(
            "--faceset", help="Face set (`s2tf data faces`) for a recipe's GAN stage on photos (overrides the config)."
        ),
    ] = None,
    voiceset: Annotated[
        Path | None,
        typer.Option(
            "--voiceset", help="Voice set (`s2tf data voices`) for a recipe's voice stage (overrides the config)."
        ),
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option("--teacher", help="Weights whose drawn mouths teach a recipe's mouth-teacher stage (overrides)."),
    ] = None,
    voices: Annotated[
        list[Path] | None,
        typer.Option(
            "--voices", help="Voice folder (s2f, LibriSpeech or RAVDESS layout) for a mouth-teacher stage; repeatable."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train the three stages (visual, audio-visual sync, finetune); resumes from the run folder."""
    _setup_logging(verbose)
    from ..config import ConfigError
    from ..training.config import TrainConfig
    from ..training.trainer import train

    if not config.is_file():
        raise UsageError(f"{config}: no such file")
    from ..baselines.train_voice2face import is_baseline_recipe

    if is_baseline_recipe(config):
        return _train_baseline(config, out, corpus, max_steps, cpu, seed)
    try:
        given = {"corpus": corpus, "init": init, "seed": seed, "extra_faces": extra_faces, "faceset": faceset,
                 "voiceset": voiceset, "teacher": teacher, "voices": [str(v) for v in voices] if voices else None}  # fmt: skip
        cfg = TrainConfig.load(
            config, {k: str(v) if isinstance(v, Path) else v for k, v in given.items() if v is not None}
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if cfg.steps.identity or cfg.steps.faces or cfg.steps.voices or cfg.steps.pose_reader:
        if not cfg.faceset or not (Path(cfg.faceset) / "faces.npy").is_file():
            raise UsageError(f"{cfg.faceset or '(no faceset)'}: not a face set (run `s2tf data faces`)")
        if cfg.steps.voices and (not cfg.voiceset or not (Path(cfg.voiceset) / "dvectors.npy").is_file()):
            raise UsageError(f"{cfg.voiceset or '(no voiceset)'}: not a voice set (run `s2tf data voices`)")
    elif cfg.steps.mouth_teacher:
        if not cfg.init or not cfg.teacher:
            raise UsageError(
                f"{config}: the mouth-teacher stage needs --init (weights with a mouth entry) and --teacher"
            )
        if not cfg.voices:
            raise UsageError(f"{config}: the mouth-teacher stage needs --voices (a voice folder)")
        for folder in cfg.voices:
            if not Path(folder).is_dir():
                raise UsageError(f"{folder}: no such voice folder")
    elif not cfg.corpus or not is_corpus(cfg.corpus):
        raise UsageError(f"{cfg.corpus or '(no corpus)'}: not a prepared corpus (run `s2tf data prepare`)")
    if cfg.extra_face_share > 0 and not is_corpus(cfg.extra_faces):
        raise UsageError(f"{cfg.extra_faces or '(no extra_faces)'}: not a photo corpus (run `s2tf data photos`)")
    with _progress() as bar:
        task = bar.add_task("training", total=None)

        def report(done: int, total: int, row: dict) -> None:
            bar.update(task, completed=done, total=total,
                       description=f"{row['stage']} {row.get('phase', '')} loss {row.get('loss_g', 0):.3f}")  # fmt: skip

        summary = train(cfg, out, max_steps=max_steps, cpu=True if cpu else None, progress=report)
    err.print(f"trained to step {summary['steps']} of {summary['total_steps']}")
    typer.echo(str(out))


def _train_baseline(
    config: Path, out: Path, corpus: Path | None, max_steps: int | None, cpu: bool, seed: int | None = None
) -> None:
    """The Voice2Face-style comparison model (a recipe with `"baseline": "voice2face"`)."""
    from ..baselines.train_voice2face import Voice2FaceRecipe, train_voice2face
    from ..config import ConfigError
    from ..pipeline import select_device

    try:
        recipe = Voice2FaceRecipe.load(config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if corpus is not None:
        recipe.corpus = str(corpus)
    if seed is not None:
        recipe.seed = seed
    if not recipe.corpus or not is_corpus(recipe.corpus):
        raise UsageError(f"{recipe.corpus or '(no corpus)'}: not a prepared corpus (run `s2tf data prepare`)")
    device = select_device("cpu" if cpu else "auto")
    with _progress() as bar:
        task = bar.add_task("training voice2face", total=None)

        def report(done: int, total: int, row: dict) -> None:
            bar.update(task, completed=done, total=total, description=f"voice2face {row['phase']}")

        summary = train_voice2face(recipe, out, max_steps=max_steps, device=device, progress=report)
    err.print(f"trained to step {summary['steps']} of {summary['total_steps']}")
    typer.echo(str(out))


@app.command("export")
@handle_errors
def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint folder or a run folder (newest checkpoint).")],
    out: Annotated[Path, typer.Argument(help="Weights folder to write (config.json, model.safetensors, README.md).")],
) -> None:
    """Turn a training checkpoint into a weights folder that `--weights` accepts."""
    from ..baselines.train_voice2face import export_voice2face, is_baseline_recipe
    from ..training.export import export

    if not checkpoint.exists():
        raise UsageError(f"{checkpoint}: no such checkpoint or run folder")
    try:
        if is_baseline_recipe(checkpoint / "train_config.json"):
            folder = export_voice2face(checkpoint, out)
        else:
            folder = export(checkpoint, out)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    typer.echo(str(folder))
