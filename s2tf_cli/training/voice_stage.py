"""The voice stage on real people (`steps.voices`): E_id^a's head learns to place a voice where its
speaker's photo lies in the identity space, every other part frozen.

Why a stage of its own: E_id^a is a frozen GE2E encoder under a small head, and the visual side (E_id^v,
W, G) comes from the GAN stage on photos. So the head can train on precomputed d-vectors (`s2tf data
voices`) in minutes, against f_id^v of the same person's photo, with the paper's losses:
- Eq. 1, InfoNCE between f_id^a and f_id^v of the photo from the same video (s2f) or the actor (RAVDESS);
- Eq. 2, ArcFace on the shared centroids W (frozen: they are the photos' centroids), for people with one;
- gender, through a linear probe fitted on f_id^v of labelled photos and then frozen, so the voice lands
  on the side of the space whose faces G draws as that gender (LibriSpeech's voices have no photo but a
  gender; s2f's AVSpeech photos get the probe's label where it is confident).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.voiceset import BACKBONE
from ..models.s2tf import S2TFModel
from . import checkpoint
from .config import TrainConfig
from .face_batches import FaceSet, identity_labels, read_rows, resolved

log = logging.getLogger(__name__)

PSEUDO_GENDER_CONFIDENCE = 0.9  # probe probability above which an unlabelled photo's gender is used
METRICS = ("loss_g", "id_sync", "pos_cos", "arcface", "gender", "gender_acc")  # every row has these columns
VALIDATION = ("val_people", "val_median_rank", "val_r10")  # filled on `sample_every` steps


class VoiceSet:
    """One split of a `s2tf data voices` folder: unit d-vectors with their person, gender and photo."""

    def __init__(self, folder: str | Path, split: str = "train"):
        folder = Path(folder)
        if not (folder / "dvectors.npy").is_file() or not (folder / "windows.csv").is_file():
            raise FileNotFoundError(f"{folder}: not a voice set (run `s2tf data voices`)")
        with open(folder / "windows.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["split"] == split]
        if not rows:
            raise ValueError(f"{folder}: no {split} voices in the voice set")
        vectors = np.load(folder / "dvectors.npy", mmap_mode="r")
        self.dvectors = torch.from_numpy(np.ascontiguousarray(vectors[[int(r["window"]) for r in rows]]))
        self.person = [r["person"] for r in rows]
        self.photo = [resolved(r["photo"]) for r in rows]
        self.variant = np.array([int(r["variant"]) for r in rows])
        self.gender = np.array([{"male": 0, "female": 1}.get(r["gender"], -1) for r in rows])

    def __len__(self) -> int:
        return len(self.person)

    def split_off(self, people: set[str]) -> VoiceSet:
        """Move these people's windows into a new VoiceSet (returned), keeping the others here."""
        out = object.__new__(VoiceSet)
        take = np.array([p in people for p in self.person])
        for name, keep in ((out, take), (self, ~take)):
            idx = np.flatnonzero(keep)
            name.dvectors = self.dvectors[torch.from_numpy(idx)]
            name.person = [self.person[i] for i in idx]
            name.photo = [self.photo[i] for i in idx]
            name.variant, name.gender = self.variant[idx], self.gender[idx]
        return out


def dev_people(voices: VoiceSet, faces: FaceSet, n: int, seed: int) -> list[str]:
    """`n` training people who have a photo in the face set, drawn reproducibly."""
    with_photo = {r.person for r in faces.rows}
    people = sorted({p for p in voices.person if p in with_photo})
    if n >= len(people):
        raise ValueError(f"voice_dev_people {n}: only {len(people)} training people have a photo")
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(people, n, replace=False).tolist())


def photo_identities(model: S2TFModel, faces: FaceSet, batch: int = 256) -> torch.Tensor:
    """(N, id_dim) unit f_id^v of every face-set photo, E_id^v in eval mode."""
    enc = model.visual_identity.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(faces), batch):
            x = torch.from_numpy(faces.images[i : i + batch]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
            out.append(F.normalize(enc(x).float(), dim=-1))
    return torch.cat(out)


def fit_gender_probe(f_id: torch.Tensor, gender: np.ndarray, steps: int = 500) -> nn.Linear:
    """Logistic regression from unit f_id^v to gender (0 male, 1 female) on the labelled rows."""
    ok = torch.from_numpy(gender >= 0)
    x, y = f_id[ok], torch.from_numpy(gender)[ok].float()
    probe = nn.Linear(f_id.shape[1], 1)
    opt = torch.optim.Adam(probe.parameters(), lr=0.05)
    for _ in range(steps):
        loss = F.binary_cross_entropy_with_logits(probe(x)[:, 0], y) + 1e-4 * probe.weight.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return probe.requires_grad_(False)


class VoiceTargets:
    """Per voice window: the photo's f_id^v (or none), the W label (-1: none) and a gender (-1: none)."""

    def __init__(self, voices: VoiceSet, faces: FaceSet, f_photo: torch.Tensor, labels: dict[str, int],
                 probe: nn.Linear):  # fmt: skip
        by_photo = {}
        by_person: dict[str, int] = {}
        for i, row in enumerate(faces.rows):
            by_photo[row.photo] = i
            by_person.setdefault(row.person, i)
        # the clip's own photo where the face set has it, else any photo of the person, else none (-1)
        rows = [by_photo[p] if p in by_photo else by_person.get(person, -1)
                for p, person in zip(voices.photo, voices.person)]  # fmt: skip
        self.photo_row = torch.tensor(rows)
        self.label = torch.tensor([labels.get(p, -1) for p in voices.person])
        gender = torch.from_numpy(voices.gender.copy()).long()
        with torch.no_grad():
            p_female = torch.sigmoid(probe(f_photo)[:, 0])
        has = self.photo_row >= 0
        pf = torch.full((len(rows),), 0.5)
        pf[has] = p_female[self.photo_row[has]]
        pseudo = torch.where(pf > PSEUDO_GENDER_CONFIDENCE, 1, torch.where(pf < 1 - PSEUDO_GENDER_CONFIDENCE, 0, -1))
        self.gender = torch.where(gender >= 0, gender, pseudo)
        self.f_photo = f_photo


class VoiceHead(nn.Module):
    """What a checkpoint of this stage holds: the model (the trained head inside E_id^a) and the probe."""

    def __init__(self, model: S2TFModel, probe: nn.Linear):
        super().__init__()
        self.model = model
        self.gender_probe = probe


def voice_losses(head: VoiceHead, d: torch.Tensor, idx: torch.Tensor, targets: VoiceTargets, cfg: TrainConfig):
    model = head.model
    f_a = model.audio_identity.head(d)
    metrics = {}
    loss = f_a.sum() * 0
    rows = targets.photo_row[idx]
    has = rows >= 0
    w = cfg.loss
    if has.sum() > 1:
        a = F.normalize(f_a[has], dim=-1)
        v = targets.f_photo[rows[has]]
        logits = a @ v.t() / cfg.sync_temperature
        # several windows of one clip may share a photo: every row with the same photo is a positive
        same = rows[has][:, None] == rows[has][None, :]
        nce = -(torch.logsumexp(logits.masked_fill(~same, -1e4), 1) - torch.logsumexp(logits, 1)).mean()
        loss = loss + w.id_sync * nce
        metrics["id_sync"] = nce.detach()
        metrics["pos_cos"] = (a * v).sum(-1).mean().detach()
    labels = targets.label[idx]
    ok = labels >= 0
    if ok.any() and w.centroid:
        logits = model.centroids.arcface_logits(f_a[ok], labels[ok])
        arc = F.cross_entropy(logits, labels[ok])
        loss = loss + w.audio_arcface * arc
        metrics["arcface"] = arc.detach()
    g = targets.gender[idx]
    ok = g >= 0
    if ok.any():
        logit = head.gender_probe(F.normalize(f_a[ok], dim=-1))[:, 0]
        lg = F.binary_cross_entropy_with_logits(logit, g[ok].float())
        loss = loss + cfg.faces.attributes * lg
        metrics["gender"] = lg.detach()
        metrics["gender_acc"] = ((logit > 0).long() == g[ok]).float().mean()
    metrics["loss_g"] = loss.detach()
    return loss, metrics


def voice_shift(head: VoiceHead, voices: VoiceSet, targets: VoiceTargets) -> list[float]:
    """Mean unit f_id^v of the photos minus mean unit f_id^a of the voices, over the training people who
    have both, each person weighted once (ModelConfig.voice_shift)."""
    clean = np.flatnonzero((voices.variant == 0) & (targets.photo_row.numpy() >= 0))
    if not len(clean):
        return []
    with torch.no_grad():
        f_a = F.normalize(head.model.audio_identity.head(voices.dvectors[clean]), dim=-1)
    f_v = targets.f_photo[targets.photo_row[clean]]
    people = sorted({voices.person[i] for i in clean})
    index = {p: k for k, p in enumerate(people)}
    who = torch.tensor([index[voices.person[i]] for i in clean])
    count = torch.zeros(len(people)).index_add_(0, who, torch.ones(len(clean)))[:, None]
    mean_a = torch.zeros(len(people), f_a.shape[1]).index_add_(0, who, f_a.float()) / count
    mean_v = torch.zeros(len(people), f_v.shape[1]).index_add_(0, who, f_v.float()) / count
    return [round(float(v), 5) for v in mean_v.mean(0) - mean_a.mean(0)]


def validation_metrics(head: VoiceHead, voices: VoiceSet, f_photo: torch.Tensor, photo_person: list[str]) -> dict:
    """Voice -> photo retrieval among the validation people (one photo each) and the probe's gender."""
    with torch.no_grad():
        f_a = F.normalize(head.model.audio_identity.head(voices.dvectors[voices.variant == 0]), dim=-1)
    people = [p for p, v in zip(voices.person, voices.variant) if v == 0]
    index = {p: i for i, p in enumerate(photo_person)}
    keep = [i for i, p in enumerate(people) if p in index]
    if not keep:
        return {}
    by_person: dict[str, torch.Tensor] = {}
    for i in keep:
        by_person.setdefault(people[i], []).append(f_a[i])
    names = sorted(by_person)
    q = F.normalize(torch.stack([torch.stack(by_person[n]).mean(0) for n in names]), dim=-1)
    g = f_photo[[index[n] for n in names]]
    scores = q @ g.t()
    ranks = (scores > scores.diagonal()[:, None]).sum(1) + 1
    return {"val_people": len(names), "val_median_rank": float(ranks.float().median()),
            "val_r10": float((ranks <= 10).float().mean())}  # fmt: skip


def train_voice_stage(
    cfg: TrainConfig,
    out: Path,
    max_steps: int | None = None,
    cpu: bool | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
) -> dict:
    """Run (or resume) the voice stage into `out` from `cfg.init` (a GAN-stage export)."""
    from ..hub import load_model, resolve
    from .trainer import _append_csv, load_speaker_backbone, resume

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "train_config.json")
    torch.manual_seed(cfg.seed)
    model = load_model(resolve(cfg.init)) if cfg.init else S2TFModel(cfg.model)
    if dataclasses.replace(model.cfg, trained_steps=0) != dataclasses.replace(cfg.model, trained_steps=0):
        raise ValueError(f"{cfg.init}: its model config differs from the recipe's")
    load_speaker_backbone(model, cfg.audio_identity_init or str(Path(cfg.voiceset) / BACKBONE))
    faces = FaceSet(cfg.faceset, cfg.model.image_size)
    labels = identity_labels(read_rows(Path(cfg.faceset)))
    f_photo = photo_identities(model, faces)
    probe = fit_gender_probe(f_photo, faces.gender)
    with torch.no_grad():
        known = faces.gender >= 0
        acc = ((probe(f_photo[known])[:, 0] > 0).long().numpy() == faces.gender[known]).mean()
    log.info("gender probe on f_id^v: %.1f %% of %d labelled training photos", 100 * acc, known.sum())
    voices = VoiceSet(cfg.voiceset, "train")
    first = {}
    if cfg.voice_dev_people:  # scored on held-out training people; the validation people stay unseen
        dev = set(dev_people(voices, faces, cfg.voice_dev_people, cfg.seed))
        val_voices = voices.split_off(dev)
        for i, r in enumerate(faces.rows):
            if r.person in dev:
                first.setdefault(r.person, i)
        val_photo = f_photo[list(first.values())]
        log.info("voice stage: %d training people held out as its dev set", len(dev))
    else:
        val_voices = VoiceSet(cfg.voiceset, "val")
        val_faces = FaceSet(cfg.faceset, cfg.model.image_size, "val")
        for i, r in enumerate(val_faces.rows):
            first.setdefault(r.person, i)
        val_photo = photo_identities(model, val_faces)[list(first.values())]
    targets = VoiceTargets(voices, faces, f_photo, labels, probe)
    head = VoiceHead(model, probe)
    head.requires_grad_(False)
    model.audio_identity.head.requires_grad_(True)
    model.eval()
    opt = torch.optim.Adam(model.audio_identity.head.parameters(), lr=cfg.encoder_lr)
    ema = {k: v.detach().clone() for k, v in model.generator.state_dict().items()}
    start = resume(out, head, {"g": opt}, ema)
    total = cfg.steps.voices
    stop = min(total, max_steps) if max_steps is not None else total
    seconds = 0.0
    metrics: dict = {}
    n = len(voices)
    for step in range(start, stop):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        loss, metrics = voice_losses(head, voices.dvectors[idx], idx, targets, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seconds += time.perf_counter() - t0
        done = step + 1
        if done % cfg.log_every == 0 or done == stop:
            row = {"step": done, "stage": "voices", "phase": "", "seconds": round(seconds, 3),
                   **{k: round(float(metrics.get(k, float("nan"))), 5) for k in METRICS},
                   **{k: float("nan") for k in VALIDATION}}  # fmt: skip
            if cfg.sample_every and (done % cfg.sample_every == 0 or done == stop):
                row.update(validation_metrics(head, val_voices, val_photo, list(first)))
            _append_csv(out / "metrics-voices.csv", row)
            if progress:
                progress(done, stop, row)
        if done % cfg.checkpoint_every == 0 or done == stop:
            checkpoint.save(out / "checkpoints", done, head, {"g": opt}, ema,
                            {"stage_seconds": {"voices": seconds}, "init_steps": model.cfg.trained_steps},
                            keep=cfg.keep_checkpoints)  # fmt: skip
    if stop == total and cfg.voice_shift:  # where G should draw a voice: into the config export reads
        cfg.model.voice_shift = voice_shift(head, voices, targets)
        cfg.save(out / "train_config.json")
    summary = {"steps": stop, "total_steps": total, "stage_seconds": {"voices": seconds}, "init": cfg.init,
               "probe_gender_acc": float(acc), "device": "cpu",
               "scored_on": "dev (held-out training people)" if cfg.voice_dev_people else "validation people",
               **validation_metrics(head, val_voices, val_photo, list(first)),
               "last": {k: float(v) for k, v in metrics.items()}}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
