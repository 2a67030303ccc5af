"""The mouth-teacher stage (`steps.mouth_teacher`): E_s^a's mouth entry learns, on real voices, how open
another model draws the mouth for each video frame; every other part of the weights is kept as it is.

A run of its own after the mouth stage, for weights with a mouth entry (`model.mouth_scale`). The mouth stage
teaches that entry on the synthesised corpus only (mouths opened by espeak's phoneme timings, or by loudness),
and on real speech its response comes late and broad. The teacher (`teacher`: weights whose mouths follow
real speakers' well, such as the 128 px default) speaks each training clip of `voices` with its own face,
still; this model's E_ir^v reads the mouth entry off each of its frames, and that reading is the target.

The teacher's faces rest at different openings and its mouths open less far than this G's, so the target
keeps the teacher's timing and shape only: per clip, the reading minus its 10th percentile (the mouth at
rest), times one scale that gives the targets this model's own spread, plus this model's entry at silence.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..mel_source import MemoryMel, frame_windows
from ..models.mel import LOG_FLOOR
from ..models.s2tf import S2TFModel
from . import checkpoint
from .config import TrainConfig
from .pose_reader_stage import learning_rate  # warm-up over 5 % of the steps, then a cosine to 0

log = logging.getLogger(__name__)

FPS = 25.0
REST_QUANTILE = 0.1  # the share of a clip's frames taken to show the mouth at rest


class MouthRun(nn.Module):
    """What a checkpoint of this stage holds: the whole model (its E_s^a trains)."""

    def __init__(self, model: S2TFModel):
        super().__init__()
        self.model = model


def teacher_clips(folders: list[str], per_person: int) -> list:
    """The training people's clips of voice folders (s2f, LibriSpeech or RAVDESS layout; validation people
    never), at most `per_person` of each person's, spread over their recordings."""
    from ..data.voiceset import clips_in

    out = []
    for folder in folders:
        by_person: dict[str, list] = {}
        for clip in clips_in(folder):
            if clip.split == "train":
                by_person.setdefault(clip.person, []).append(clip)
        for person in sorted(by_person):
            clips = sorted(by_person[person], key=lambda c: str(c.path))
            step = max(1, math.ceil(len(clips) / per_person))
            out += clips[::step][:per_person]
    return out


@torch.no_grad()
def mouth_readings(teacher, model: S2TFModel, wave: np.ndarray) -> np.ndarray:
    """(frames,) `model`'s E_ir^v mouth entry read off the teacher's `talk` frames of `wave` (its face from
    the voice, still, at 25 fps)."""
    n, frames = teacher.talk_frames(wave, fps=FPS, motion="none")
    size = model.cfg.image_size
    out = []
    batch: list[torch.Tensor] = []
    for k, frame in enumerate(frames):
        batch.append(torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float() / 127.5 - 1)
        if len(batch) == 64 or k == n - 1:
            x = F.interpolate(torch.stack(batch), size=(size, size), mode="area")
            out.append(model.visual_irrelevant(x)[:, model.mouth_entry].float())
            batch = []
    return torch.cat(out).numpy()[:n]


def read_teacher(cfg: TrainConfig, model: S2TFModel, folder: Path) -> list[Path]:
    """One file per training clip in `folder` (mel, reading), made once: a stopped run keeps what it read. The
    files of clips the teacher can speak (not those with no speech found)."""
    from .. import audio as audio_io
    from ..pipeline import S2TF

    folder.mkdir(parents=True, exist_ok=True)
    clips = teacher_clips(cfg.voices, cfg.teacher_clips_per_person)
    if not clips:
        raise ValueError(f"{', '.join(cfg.voices)}: no training people's clips")
    paths = [folder / f"{i:05d}.npz" for i in range(len(clips))]
    todo = [i for i, p in enumerate(paths) if not p.is_file()]
    if todo:
        teacher = S2TF.from_pretrained(cfg.teacher, device="cpu")
        log.info("mouth teacher: reading %s's mouths on %d of %d clips", cfg.teacher, len(todo), len(clips))
    model.eval()
    for i in todo:
        if paths[i].is_file():  # another process reading the same clips got here first
            continue
        clip = clips[i]
        wave = audio_io.load_audio(clip.path, model.cfg.audio.sample_rate)
        tmp = paths[i].with_suffix(".tmp.npz")
        try:
            reading = mouth_readings(teacher, model, wave)
        except InputError as exc:  # e.g. no speech found: kept as an empty file, so a resumed run skips it too
            log.warning("mouth teacher: %s skipped: %s", clip.path, str(exc).split(": ", 1)[-1])
            np.savez(tmp, mel=np.zeros((model.cfg.audio.n_mels, 0), np.float16), reading=np.zeros(0, np.float32),
                     person=np.array(clip.person))  # fmt: skip
            tmp.replace(paths[i])
            continue
        with torch.no_grad():  # as `talk` hears it: loudness-normalised
            mel = model.mel(torch.from_numpy(audio_io.normalize_loudness(wave)))[0]
        np.savez(tmp, mel=mel.numpy().astype(np.float16), reading=reading.astype(np.float32),
                 person=np.array(clip.person))  # fmt: skip
        tmp.replace(paths[i])
    return [p for p in paths if len(np.load(p)["reading"])]


def silence_entry(model: S2TFModel) -> float:
    a = model.cfg.audio
    silent = torch.full((1, a.n_mels, a.content_window), math.log(LOG_FLOOR))
    with torch.no_grad():
        return float(model.audio_content(silent)[0, model.mouth_entry])


def targets(readings: list[np.ndarray], own_spread: float, rest: float) -> tuple[list[np.ndarray], float]:
    """Per-clip targets from the teacher's readings (module docstring) and the scale applied."""
    spread = float(np.median([r.std() for r in readings]))
    scale = own_spread / spread if spread > 0 else 1.0
    return [((r - np.quantile(r, REST_QUANTILE)) * scale + rest).astype(np.float32) for r in readings], scale


def is_dev(person: str, share: float) -> bool:
    """Training people held out of this stage to score it (the same hash rule as the validation people)."""
    from ..data.holdout import _unit

    return _unit(f"mouth-teacher/{person}") < share


@torch.no_grad()
def fidelity(model: S2TFModel, clips: list[tuple[torch.Tensor, np.ndarray]]) -> float:
    """Median over clips of the correlation of the voice's mouth entry with the teacher's reading."""
    was = model.audio_content.training
    model.audio_content.eval()
    out = []
    for mel, target in clips:
        windows = frame_windows(MemoryMel(mel), model.cfg.audio, FPS, 0, len(target))
        entry = model.audio_content(windows)[:, model.mouth_entry].numpy()
        if entry.std() > 0 and target.std() > 0:
            out.append(float(np.corrcoef(entry, target)[0, 1]))
    model.audio_content.train(was)
    return float(np.median(out)) if out else float("nan")


def train_mouth_teacher_stage(
    cfg: TrainConfig,
    out: Path,
    max_steps: int | None = None,
    cpu: bool | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
) -> dict:
    """Run (or resume) the mouth-teacher stage into `out` from `cfg.init`."""
    from ..hub import load_model, resolve
    from .trainer import _append_csv, resume

    if not cfg.init or not cfg.teacher or not cfg.voices:
        raise ValueError("the mouth-teacher stage needs 'init' (weights with a mouth entry), 'teacher' and 'voices'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = load_model(resolve(cfg.init))
    if model.mouth_entry is None:
        raise ValueError(f"{cfg.init}: these weights carry no mouth entry (train a mouth-taught GAN stage first)")
    cfg.model = model.cfg
    cfg.save(out / "train_config.json")
    files = read_teacher(cfg, model, out / "teacher")
    skipped = len([p for p in (out / "teacher").glob("*.npz") if not p.name.endswith(".tmp.npz")]) - len(files)
    loaded = [np.load(p) for p in files]
    mels = [torch.from_numpy(z["mel"].astype(np.float32)) for z in loaded]
    people = [str(z["person"]) for z in loaded]
    model.eval()
    rest = silence_entry(model)
    with torch.no_grad():
        own = [model.audio_content(frame_windows(MemoryMel(m), model.cfg.audio, FPS, 0, len(z["reading"])))
               [:, model.mouth_entry].std().item() for m, z in zip(mels, loaded)]  # fmt: skip
    goals, scale = targets([z["reading"] for z in loaded], float(np.median(own)), rest)
    dev = [i for i, p in enumerate(people) if is_dev(p, cfg.teacher_dev_share)]
    train_idx = [i for i in range(len(files)) if i not in set(dev)]
    if not train_idx:
        raise ValueError(f"teacher_dev_share {cfg.teacher_dev_share} leaves no training clips")
    frames = np.concatenate([np.stack([np.full(len(goals[i]), i), np.arange(len(goals[i]))], 1) for i in train_idx])
    dev_clips = [(mels[i], goals[i]) for i in dev]
    log.info("mouth teacher: %d training clips (%d frames), %d dev clips; scale %.3f, rest %.3f",
             len(train_idx), len(frames), len(dev), scale, rest)  # fmt: skip
    model.requires_grad_(False)
    model.audio_content.requires_grad_(True)
    model.audio_content.train()
    run = MouthRun(model)
    opt = torch.optim.Adam(model.audio_content.parameters(), lr=cfg.encoder_lr)
    ema = {k: v.detach().clone() for k, v in model.generator.state_dict().items()}
    start = resume(out, run, {"g": opt}, ema)
    total = cfg.steps.mouth_teacher
    stop = min(total, max_steps) if max_steps is not None else total
    seconds, loss = 0.0, torch.zeros(())
    before = fidelity(model, dev_clips) if start == 0 else None
    for step in range(start, stop):
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, step])
        pick = frames[rng.integers(0, len(frames), cfg.batch_size)]
        windows = torch.cat([frame_windows(MemoryMel(mels[c]), model.cfg.audio, FPS, k, k + 1) for c, k in pick])
        goal = torch.from_numpy(np.array([goals[c][k] for c, k in pick], np.float32))
        lr = learning_rate(step, total, cfg.encoder_lr)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = F.smooth_l1_loss(model.audio_content(windows)[:, model.mouth_entry], goal, beta=0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seconds += time.perf_counter() - t0
        done = step + 1
        if done % cfg.log_every == 0 or done == stop:
            row = {"step": done, "stage": "mouth_teacher", "phase": "", "seconds": round(seconds, 3),
                   "loss": round(float(loss.detach()), 5), "lr": lr}  # fmt: skip
            scored = cfg.sample_every and (done % cfg.sample_every == 0 or done == stop)
            row["dev_fidelity"] = round(fidelity(model, dev_clips), 4) if scored else ""  # one header for every row
            _append_csv(out / "metrics-mouth_teacher.csv", row)
            if progress:
                progress(done, stop, {**row, "loss_g": row["loss"]})
        if done % cfg.checkpoint_every == 0 or done == stop:
            checkpoint.save(out / "checkpoints", done, run, {"g": opt}, ema,
                            {"stage_seconds": {"mouth_teacher": seconds}, "init_steps": model.cfg.trained_steps},
                            keep=cfg.keep_checkpoints)  # fmt: skip
    summary = {"steps": stop, "total_steps": total, "stage_seconds": {"mouth_teacher": seconds}, "init": cfg.init,
               "teacher": cfg.teacher, "device": "cpu", "clips": len(train_idx), "skipped": skipped,
               "frames": int(len(frames)),
               "dev_clips": len(dev), "scale": scale, "rest": rest, "last": {"loss": float(loss.detach())},
               "dev_fidelity": fidelity(model, dev_clips)}  # fmt: skip
    if before is not None:
        summary["dev_fidelity_before"] = before
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
