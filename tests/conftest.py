"""Fixtures the tests make themselves: tiny random models, speech-like audio, face images."""

from __future__ import annotations

import csv
import dataclasses
import functools
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from s2tf_cli.config import AudioIdentityConfig, DiscriminatorConfig, preset
from s2tf_cli.training.config import TrainConfig

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@functools.cache
def _speech(name: str) -> np.ndarray:
    import librosa

    wave, sr = sf.read(EXAMPLES / name, dtype="float32")
    return librosa.resample(wave, orig_sr=sr, target_sr=16000)


def speechlike(seconds: float, sr: int = 16000, f0: float = 120.0, seed: int = 0) -> np.ndarray:
    """Real speech a voice-activity detector accepts: espeak-ng's low (f0 < 165) or high example voice, from
    a seed-chosen point, played faster or slower so its pitch moves toward `f0`, looped to `seconds`."""
    base, ref = (_speech("voice_a.wav"), 110.0) if f0 < 165 else (_speech("voice_b.wav"), 210.0)
    rate = float(np.clip(f0 / ref, 0.8, 1.25))  # > 1: higher and faster (a tape played fast)
    n = int(round(seconds * sr))
    start = int(np.random.default_rng(seed).integers(0, len(base) // 2))
    need = int(np.ceil(n * rate * 16000 / sr)) + 1
    wave = np.resize(np.roll(base, -start), max(need, 1))  # looped
    t = np.arange(n) * rate * 16000 / sr
    out = np.interp(t, np.arange(len(wave)), wave)
    out = out / max(np.abs(out).max(), 1e-6) + 3e-4 * np.random.default_rng(seed).standard_normal(n)  # a noise floor
    return (0.3 * out).astype(np.float32)


def music(seconds: float, seed: int = 0) -> np.ndarray:
    """Chords of harmonic notes that change twice a second over a kick-like thump on every beat."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    out = np.zeros_like(t)
    for beat in range(int(seconds * 2)):
        span = (t >= beat / 2) & (t < (beat + 1) / 2)
        for note in 220.0 * 2 ** (rng.choice([0, 3, 4, 7, 10, 12], 3) / 12):
            out[span] += sum(np.sin(2 * np.pi * note * k * t[span]) / k**1.5 for k in range(1, 6))
        out[span] += 3 * np.sin(2 * np.pi * 55 * t[span]) * np.exp(-12 * (t[span] - beat / 2))
    return (out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    """Each test its own s2tf cache (gallery index): no test sees another's, none writes to ~/.cache."""
    monkeypatch.setenv("S2TF_CACHE", str(tmp_path_factory.mktemp("s2tf-cache")))


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A tiny random S2TF model saved as a Hub-layout folder."""
    import torch

    from s2tf_cli.config import preset
    from s2tf_cli.hub import save_folder
    from s2tf_cli.modelcard import model_card
    from s2tf_cli.models.s2tf import S2TFModel

    torch.manual_seed(0)
    cfg = preset("tiny")
    model = S2TFModel(cfg)
    return save_folder(model, tmp_path_factory.mktemp("weights") / "tiny", model_card(cfg, "tiny random (tests)"))


def with_pose_entries(weights: Path, out: Path, center: list[float], scale: list[float]) -> Path:
    """A copy of a weights folder whose config says that f_ir's first entries are yaw, pitch and roll
    (what a pose-taught GAN stage's export says), standardised by `center` and `scale`."""
    import json

    shutil.copytree(weights, out)
    cfg = json.loads((out / "config.json").read_text())
    cfg["pose_center"], cfg["pose_scale"] = list(center), list(scale)
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="session")
def voices(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("voices")
    out = {}
    out["low"] = folder / "low.wav"
    sf.write(out["low"], speechlike(2.3, f0=110, seed=1), 16000)
    out["high"] = folder / "high.wav"
    sf.write(out["high"], speechlike(1.7, 22050, f0=220, seed=2), 22050)
    return out


@pytest.fixture(scope="session")
def pipeline(tiny_weights):
    from s2tf_cli.pipeline import S2TF

    return S2TF.from_pretrained(tiny_weights, device="cpu")


@pytest.fixture(scope="session")
def pose_image() -> Path:
    return EXAMPLES / "pose.jpg"


@pytest.fixture(scope="session")
def gallery(tmp_path_factory, pose_image) -> Path:
    """Three face images (variants of the example pose), a text file and a corrupt JPEG."""
    from PIL import Image, ImageOps

    folder = tmp_path_factory.mktemp("gallery")
    base = Image.open(pose_image).convert("RGB")
    base.save(folder / "a.jpg")
    ImageOps.mirror(base).save(folder / "b.png")
    sub = folder / "nested"
    sub.mkdir()
    ImageOps.autocontrast(base.resize((300, 300))).save(sub / "c.webp")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder


@pytest.fixture(scope="session")
def face_folders(tmp_path_factory, pose_image) -> dict[str, Path]:
    """A CelebA-like folder (identity sub-folders + identities.csv), a UTKFace-like flat folder and a
    RAVDESS-like real-voice folder, all made from the example face with colour and geometry changes."""
    from PIL import Image, ImageEnhance, ImageOps

    root = tmp_path_factory.mktemp("faces")
    base = Image.open(pose_image).convert("RGB")
    variants = [base, ImageOps.mirror(base), ImageEnhance.Color(base).enhance(0.3),
                ImageEnhance.Brightness(ImageOps.mirror(base)).enhance(1.3)]  # fmt: skip
    celeb = root / "celeb"
    for i, name in enumerate(["id0001", "id0002"]):
        (celeb / name).mkdir(parents=True)
        for j in range(2):
            variants[(i * 2 + j) % 4].save(celeb / name / f"{j:06d}.jpg")
    (celeb / "identities.csv").write_text("identity,images,gender,gender_votes\nid0001,2,male,3\nid0002,2,female,2\n")
    flat = root / "flat"
    flat.mkdir()
    variants[2].save(flat / "30_1_2_20170101000000000.jpg.chip.jpg")
    real = root / "real"
    (real / "Actor_01").mkdir(parents=True)
    variants[3].save(real / "Actor_01" / "face.png")
    for k in range(2):
        sf.write(real / "Actor_01" / f"utt{k}.wav", speechlike(1.6, f0=140 + 20 * k, seed=10 + k), 16000)
    (real / "attributes.csv").write_text("image_id,Male\nActor_01,1\n")
    return {"celeb": celeb, "flat": flat, "real": real}


@pytest.fixture(scope="session")
def raw_corpus(tmp_path_factory, face_folders) -> Path:
    from s2tf_cli.data.synth import SynthOptions, synth_corpus

    out = tmp_path_factory.mktemp("raw")
    opts = SynthOptions(out, identities=4, clips_per_identity=2, seed=3, workers=1, size=96,
                        real_clips_per_identity=2)  # fmt: skip
    synth_corpus([face_folders["celeb"], face_folders["flat"]], [face_folders["real"]], opts)
    return out


@pytest.fixture(scope="session")
def prepared_corpus(tmp_path_factory, raw_corpus) -> Path:
    from s2tf_cli.data.prepare import PrepareOptions, prepare_corpus

    out = tmp_path_factory.mktemp("prepared")
    prepare_corpus(PrepareOptions(raw_corpus, out, size=32, workers=1, val_fraction=0.0, test_fraction=0.0))
    return out


# ---------------------------------------------------------------- real-people trees (s2f, LibriSpeech layouts)
from s2tf_cli.data.holdout import is_validation  # noqa: E402


def holdout_name(source: str, val: bool, prefix: str) -> str:
    """The first name `prefix<k>` on the requested side of the holdout rule."""
    return next(f"{prefix}{k}" for k in range(1000) if is_validation(source, f"{prefix}{k}") == val)


TRAIN_PERSON, VAL_PERSON = holdout_name("s2f", False, "Train_"), holdout_name("s2f", True, "Held_")


@pytest.fixture(scope="session")
def s2f_tree(tmp_path_factory, face_folders) -> Path:
    """An s2f-like tree: two VoxCeleb people (one held out by the rule), one AVSpeech person."""
    root = tmp_path_factory.mktemp("s2f") / "s2f"
    photos = sorted(face_folders["celeb"].glob("*/*.jpg"))
    people = [("voxceleb", TRAIN_PERSON, "m"), ("voxceleb", VAL_PERSON, "f"), ("avspeech", "yt_abc", "")]
    for k, (sub, name, _) in enumerate(people):
        folder = root / sub / name
        folder.mkdir(parents=True)
        for c in range(2 if sub == "voxceleb" else 1):
            shutil.copy(photos[(k + c) % len(photos)], folder / f"{name}_{c:07d}.jpg")
            sf.write(folder / f"{name}_{c:07d}.ogg", speechlike(3.5, f0=110 + 40 * k + 5 * c, seed=k * 10 + c), 16000)
        shutil.copy(folder / f"{name}_0000000.jpg", folder / "face.jpg")
    with open(root / "people.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["person", "gender", "nationality", "source"])
        w.writerows([name, g, "", sub] for sub, name, g in people)
    return root


@pytest.fixture(scope="session")
def libri_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("libri") / "librispeech"
    root.mkdir()
    for k in range(2):
        sf.write(root / f"{k}-1-0000.flac", speechlike(4.0, f0=100 + 100 * k, seed=40 + k), 16000)
    (root / "speakers.csv").write_text("file,speaker,gender,seconds\n0-1-0000.flac,0,m,4.0\n1-1-0000.flac,1,f,4.0\n")
    return root


@pytest.fixture(scope="session")
def faceset(tmp_path_factory, s2f_tree, face_folders) -> Path:
    out = tmp_path_factory.mktemp("faceset") / "faces"
    from typer.testing import CliRunner

    from s2tf_cli.cli import app

    result = CliRunner().invoke(app, ["data", "faces", str(s2f_tree), str(face_folders["real"]), str(face_folders["celeb"]),
                                 str(face_folders["flat"]), str(out), "--size", "32", "-j", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def ge2e_model_config():
    """The tiny preset with a tiny GE2E under E_id^a and a residual D."""
    cfg = preset("tiny")
    return dataclasses.replace(
        cfg, preset="tiny-real",
        audio_identity=AudioIdentityConfig(backbone="ge2e", ge2e_hidden=8, ge2e_layers=1, head_hidden=16),
        discriminator=DiscriminatorConfig(channels=[8, 16], kind="residual"),
    )  # fmt: skip


@pytest.fixture(scope="session")
def ge2e_file(tmp_path_factory) -> Path:
    from s2tf_cli.models.s2tf import S2TFModel

    torch.manual_seed(5)
    model = S2TFModel(ge2e_model_config())
    path = tmp_path_factory.mktemp("ge2e") / "ge2e.safetensors"
    save_file({k: v.contiguous() for k, v in model.audio_identity.backbone.state_dict().items()}, str(path))
    return path


def faces_config(faceset: Path, ge2e: Path) -> TrainConfig:
    cfg = TrainConfig(model=ge2e_model_config(), faceset=str(faceset), audio_identity_init=str(ge2e))
    cfg.steps.faces, cfg.steps.visual, cfg.steps.sync, cfg.steps.finetune = 4, 0, 0, 0
    cfg.faces.identity_start = 1
    cfg.faces.r1_every = 2
    cfg.batch_size, cfg.sample_every, cfg.checkpoint_every, cfg.log_every = 4, 2, 2, 1
    cfg.precision = "fp32"
    return cfg


def label_from_pixels(faceset: Path) -> tuple[np.ndarray, dict, int]:
    """pose.csv for a test face set, every 5th photo unlabelled; the labels are read off the pixels (yaw:
    left half's brightness over the right's, pitch: top over bottom, mouth: the mouth box's brightness), so a
    network can learn them. The labels are (n, 4): yaw, pitch, roll, mouth.
    Returns the labels, label_faceset's summary and the photos its progress counted."""
    from s2tf_cli.data.pose_labels import label_faceset

    images = np.load(faceset / "faces.npy").astype(np.float64) / 255
    n, half = len(images), images.shape[1] // 2
    yaw = images[:, :, :half].mean((1, 2, 3)) - images[:, :, half:].mean((1, 2, 3))
    pitch = 0.5 + images[:, half:].mean((1, 2, 3)) - images[:, :half].mean((1, 2, 3))
    s = images.shape[1]
    mouth = images[:, int(0.62 * s) : int(0.85 * s), int(0.3 * s) : int(0.7 * s)].mean((1, 2, 3))
    truth = np.stack([yaw, pitch, 0.01 * (np.arange(n) % 5) - 0.02, mouth], 1)
    calls = iter(range(n))

    def estimator(image: np.ndarray):
        i = next(calls)
        assert image.shape == images.shape[1:]
        return None if i % 5 == 4 else tuple(truth[i])

    ticks: list[int] = []
    summary = label_faceset(faceset, estimator, progress=ticks.append)
    return truth, summary, sum(ticks)


@pytest.fixture(scope="session")
def posed_faceset(tmp_path_factory, faceset) -> Path:
    """The test face set with pose labels, for recipes that teach pose."""
    out = tmp_path_factory.mktemp("posed") / "faces"
    shutil.copytree(faceset, out)
    label_from_pixels(out)
    return out
