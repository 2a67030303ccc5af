"""How much of the face directions a `--face-voice` corpus ties its voices to each identity space carries.

A synthesised voice can only teach E_id^a what f_id^v holds: stage 2 aligns the two. When the ablation
of the shared centroids ties, this says whether the visual space had the voice-tied part of a face to
offer (`s2tf data synth --face-voice` writes each face's scores into `<identity>/voice.json`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError
from . import metrics as M

DIRECTIONS = ("pitch", "tract", "tilt", "rate")  # the voice settings each score drives (`voices.voice_profile`)


def face_scores(raw: Path) -> dict[str, np.ndarray]:
    """identity -> its face's four scores, for every identity of a raw tree whose voice follows its face."""
    raw = Path(raw)
    if not raw.is_dir():
        raise UsageError(f"{raw}: no such folder")
    out = {}
    for meta in sorted(raw.glob("*/voice.json")):
        z = json.loads(meta.read_text()).get("face_z")
        if z is not None:
            out[meta.parent.name] = np.asarray(z, dtype=np.float64)
    if not out:
        raise UsageError(f"{raw}: no <identity>/voice.json with face scores (a corpus made by "
                         "`s2tf data synth --face-voice`)")  # fmt: skip
    return out


def per_direction_r2(x_train: np.ndarray, z_train: np.ndarray, x_test: np.ndarray, z_test: np.ndarray,
                     ridge: float = 1.0) -> list[float]:  # fmt: skip
    """Held-out R² of a ridge fit from features to each score column."""
    return [M.heldout_r2(x_train, z_train[:, j], x_test, z_test[:, j], ridge) for j in range(z_train.shape[1])]


def _features(s2tf, data: Path, split: str, scores: dict[str, np.ndarray], max_people: int):
    from ..training.corpus import Shard
    from .protocol import corpus_labels

    try:
        people = [p for p in corpus_labels(data, split, 100_000) if p.name in scores][:max_people]
    except ValueError:
        people = []
    f_v, f_a, z = [], [], []
    for p in people:
        shard = Shard(p.path)
        f_v.append(s2tf.face_identity(shard.frame(0), aligned=True).cpu())
        f_a.append(s2tf.voice_identity(shard.audio).float().cpu())
        z.append(scores[p.name])
    return people, f_v, f_a, z


def face_score_probe(s2tf, data: Path, raw: Path, split: str = "test", max_people: int = 200,
                     fit_people: int = 1000, ridge: float = 1.0) -> dict:  # fmt: skip
    """Ridge fits from each identity space (f_id^v of the first frame, f_id^a of the clip's voice) to the
    face scores, on up to `fit_people` training identities, scored (R²) on `split`'s."""
    scores = face_scores(raw)
    fit, fv_tr, fa_tr, z_tr = _features(s2tf, data, "train", scores, fit_people)
    held, fv_te, fa_te, z_te = _features(s2tf, data, split, scores, max_people)
    if len(fit) < 2 or len(held) < 2:
        raise UsageError(
            f"{raw}: face scores for {len(fit)} training and {len(held)} {split} identities of "
            f"{data}; the probe needs 2 of each (is it the raw tree this corpus was prepared from?)"
        )
    z_tr, z_te = np.stack(z_tr), np.stack(z_te)
    out: dict = {"face-score probe people": f"{len(fit)} fit / {len(held)} scored"}
    for name, tr, te in (("f_id^v", fv_tr, fv_te), ("f_id^a", fa_tr, fa_te)):
        r2 = per_direction_r2(torch.stack(tr).numpy(), z_tr, torch.stack(te).numpy(), z_te, ridge)
        out[f"{name} face-score R2"] = float(np.mean(r2))
        out[f"{name} face-score R2 by direction"] = dict(zip(DIRECTIONS, r2))
    return out
