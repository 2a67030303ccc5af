"""The pose-reader stage (`steps.pose_reader`): the head-pose reader (models/pose_reader.py) learns the face
set's pose labels; every other part of the weights it continues is kept as it is.

A run of its own after a pose-taught GAN stage (weights with `pose_scale`). Its targets are the labels the
GAN stage gave E_ir^v's pose entries, (measure - pose_center) / pose_scale, so G reads the reader's entries
as it reads E_ir^v's. The crops are re-framed (zoom, shift), mirrored (yaw and roll change sign), re-lit,
greyed and blurred: a reference photo's face finder and a video's face tracker frame a face less steadily
than the face set did, and video is softer than photos.
"""

from __future__ import annotations

import dataclasses
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

from ..models.s2tf import S2TFModel
from . import checkpoint
from .config import TrainConfig
from .face_batches import FaceSet

log = logging.getLogger(__name__)

VAL_COLUMNS = ("val_photos", *(f"val_{n}_corr{e}" for n in ("yaw", "pitch", "roll") for e in ("", "_encoder")))
MARGIN = 1.25  # the face set is read at this multiple of the model's size, so a zoomed-out view has real pixels
WARMUP = 0.05  # share of the steps over which the learning rate rises; it then falls to 0 on a cosine


class ReaderRun(nn.Module):
    """What a checkpoint of this stage holds: the whole model (the reader inside it trains)."""

    def __init__(self, model: S2TFModel):
        super().__init__()
        self.model = model


def reader_views(
    images: np.ndarray, pose: np.ndarray, rng: np.random.Generator, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3, size, size) augmented crops in [-1, 1] of (n, S, S, 3) uint8 face-set images read at S = MARGIN x
    size, with their (n, 3) standardised pose (mirrored where the crop is). Each view is a window of 68-96 % of
    the face-set crop (size / zoom of its S pixels), its centre shifted by about 3 px at 64."""
    import cv2

    out, labels = [], pose.astype(np.float32).copy()
    unit = size / 64
    for k, img in enumerate(images):
        side = img.shape[0]
        zoom = 1 / rng.uniform(0.85, 1.2)
        cx, cy = side / 2 + rng.normal(0, 3 * unit), side / 2 + rng.normal(0, 3 * unit)
        m = np.array([[zoom, 0, size / 2 - zoom * cx], [0, zoom, size / 2 - zoom * cy]], np.float32)
        view = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if rng.random() < 0.5:
            view = view[:, ::-1]
            labels[k, [0, 2]] *= -1  # a mirrored head turns and tilts the other way
        view = view.astype(np.float32) * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30) + rng.normal(0, 8, 3)
        if rng.random() < 0.2:
            view = np.repeat(view.mean(-1, keepdims=True), 3, -1)
        if rng.random() < 0.3:
            view = cv2.GaussianBlur(view, (0, 0), rng.uniform(0.5, 1.3) * unit)
        out.append(np.clip(view, 0, 255))
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(out))).permute(0, 3, 1, 2) / 127.5 - 1
    return batch.float(), torch.from_numpy(labels)


def learning_rate(step: int, total: int, peak: float) -> float:
    rise = max(1, int(WARMUP * total))
    if step < rise:
        return peak * (step + 1) / rise
    return peak * 0.5 * (1 + math.cos(math.pi * (step - rise) / max(1, total - rise)))


def standard_pose(faces: FaceSet, model: S2TFModel) -> np.ndarray:
    cfg = model.cfg
    return ((faces.pose - np.asarray(cfg.pose_center)) / np.asarray(cfg.pose_scale)).astype(np.float32)


@torch.no_grad()
def validation_metrics(model: S2TFModel, faces: FaceSet | None) -> dict:
    """Per pose entry, the correlation of the reader's and of E_ir^v's reading with the label, on the face
    set's validation people (their crops as the face set framed them)."""
    if faces is None:
        return {}
    target = standard_pose(faces, model)
    ok = np.isfinite(target[:, 0])
    if ok.sum() < 3:
        return {}
    size = model.cfg.image_size
    crops = F.interpolate(torch.from_numpy(faces.images[ok]).permute(0, 3, 1, 2).float() / 127.5 - 1, size=(size, size),
                          mode="area")  # fmt: skip
    was = model.training
    model.eval()
    reader = torch.cat([model.pose_reader(crops[i : i + 256]) for i in range(0, len(crops), 256)]).numpy()
    encoder = torch.cat([model.visual_irrelevant(crops[i : i + 256]) for i in range(0, len(crops), 256)]).numpy()
    model.train(was)
    out = {"val_photos": int(ok.sum())}
    for k, name in enumerate(("yaw", "pitch", "roll")[: target.shape[1]]):
        out[f"val_{name}_corr"] = float(np.corrcoef(reader[:, k], target[ok, k])[0, 1])
        out[f"val_{name}_corr_encoder"] = float(np.corrcoef(encoder[:, k], target[ok, k])[0, 1])
    return out


def train_pose_reader_stage(
    cfg: TrainConfig,
    out: Path,
    max_steps: int | None = None,
    cpu: bool | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
) -> dict:
    """Run (or resume) the pose-reader stage into `out` from `cfg.init` (weights with pose entries)."""
    from ..hub import load_model, resolve
    from .trainer import _append_csv, resume

    if not cfg.init:
        raise ValueError("the pose-reader stage continues weights with pose entries: give 'init'")
    if not cfg.pose_reader:
        raise ValueError("the pose-reader stage needs 'pose_reader' (the reader's widths)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    given = load_model(resolve(cfg.init))
    if not given.cfg.pose_scale:
        raise ValueError(f"{cfg.init}: these weights carry no pose entries (train a pose-taught GAN stage first)")
    # the model continued, with a reader of the recipe's widths (a fresh one, or the given weights' own)
    mcfg = dataclasses.replace(given.cfg, pose_reader=list(cfg.pose_reader))
    model = S2TFModel(mcfg)
    theirs = given.state_dict()
    if given.cfg.pose_reader != mcfg.pose_reader:
        theirs = {k: v for k, v in theirs.items() if not k.startswith("pose_reader.")}
    missing, unexpected = model.load_state_dict(theirs, strict=False)
    assert not unexpected and all(k.startswith("pose_reader.") for k in missing), (missing, unexpected)
    cfg.model = mcfg
    cfg.save(out / "train_config.json")
    size = mcfg.image_size
    faces = FaceSet(cfg.faceset, round(MARGIN * size))
    target = standard_pose(faces, model)
    labelled = np.flatnonzero(np.isfinite(target[:, 0]))
    if not len(labelled):
        raise ValueError(f"{cfg.faceset}: no pose labels (pose.csv); run `python -m s2tf_cli.data.pose_labels`")
    try:
        val = FaceSet(cfg.faceset, size, "val")
    except ValueError:
        val = None
    log.info("pose reader: %d labelled training photos", len(labelled))
    model.requires_grad_(False)
    model.pose_reader.requires_grad_(True)
    model.eval()
    model.pose_reader.train()
    run = ReaderRun(model)
    opt = torch.optim.AdamW(model.pose_reader.parameters(), lr=cfg.encoder_lr, weight_decay=1e-4)
    ema = {k: v.detach().clone() for k, v in model.generator.state_dict().items()}
    start = resume(out, run, {"g": opt}, ema)
    total = cfg.steps.pose_reader
    stop = min(total, max_steps) if max_steps is not None else total
    seconds, loss = 0.0, torch.zeros(())
    for step in range(start, stop):
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, step])
        pick = labelled[rng.integers(0, len(labelled), cfg.batch_size)]
        views, labels = reader_views(faces.images[pick], target[pick], rng, size)
        lr = learning_rate(step, total, cfg.encoder_lr)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = F.smooth_l1_loss(model.pose_reader(views), labels, beta=0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seconds += time.perf_counter() - t0
        done = step + 1
        if done % cfg.log_every == 0 or done == stop:
            row = {"step": done, "stage": "pose_reader", "phase": "", "seconds": round(seconds, 3),
                   "loss": round(float(loss.detach()), 5), "lr": lr}  # fmt: skip
            row.update(dict.fromkeys(VAL_COLUMNS, ""))  # one header for every row: scored ones fill it
            if cfg.sample_every and (done % cfg.sample_every == 0 or done == stop):
                row.update(validation_metrics(model, val))
            _append_csv(out / "metrics-pose_reader.csv", row)
            if progress:
                progress(done, stop, {**row, "loss_g": row["loss"]})
        if done % cfg.checkpoint_every == 0 or done == stop:
            checkpoint.save(out / "checkpoints", done, run, {"g": opt}, ema,
                            {"stage_seconds": {"pose_reader": seconds}, "init_steps": model.cfg.trained_steps},
                            keep=cfg.keep_checkpoints)  # fmt: skip
    summary = {"steps": stop, "total_steps": total, "stage_seconds": {"pose_reader": seconds}, "init": cfg.init,
               "device": "cpu", "labelled_photos": int(len(labelled)), "last": {"loss": float(loss.detach())},
               **validation_metrics(model, val)}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
