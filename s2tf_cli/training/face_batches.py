"""Batches for the GAN stage, drawn from a `s2tf data faces` folder (faces.npy + faces.csv).

Each sample is a target photo B and an identity photo A of the same person: another photo where the
person has several (CelebA, VoxCeleb celebrities), else B itself re-framed and re-lit, so G cannot copy
A's pixels into B. Only the `train` split is read: validation people are never drawn. Where the set has
head-pose labels (`pose.csv`, data/pose_labels.py), each target carries its pose, standardised by the set's
own spread (`pose_center`, `pose_scale`) and mirrored with the photo, and how open its mouth is (`mouth_center`,
`mouth_scale`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REAL_VOICE_SOURCES = ("s2f", "ravdess")  # people whose voice is at hand too: their labels come first
ETHNICITIES = ["white", "black", "asian", "indian", "other"]


@dataclass
class FaceRow:
    index: int
    person: str
    source: str
    gender: int  # 0 male, 1 female, -1 unknown
    age: float  # years, -1 unknown
    ethnicity: int  # ETHNICITIES index, -1 unknown
    photo: str = ""  # the source photo's path, resolved (voice sets name the photo of their clip)


def read_rows(folder: Path, split: str = "train") -> list[FaceRow]:
    path = Path(folder) / "faces.csv"
    if not path.is_file() or not (Path(folder) / "faces.npy").is_file():
        raise FileNotFoundError(f"{folder}: not a face set (run `s2tf data faces`)")
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["split"] != split:
                continue
            gender = {"male": 0, "female": 1}.get(r["gender"], -1)
            eth = ETHNICITIES.index(r["ethnicity"]) if r["ethnicity"] in ETHNICITIES else -1
            rows.append(
                FaceRow(int(r["index"]), r["person"], r["source"], gender, float(r["age"]), eth, resolved(r["photo"]))
            )
    return rows


def resolved(path: str) -> str:
    return str(Path(path).resolve()) if path else ""


def identity_labels(rows: list[FaceRow]) -> dict[str, int]:
    """ArcFace labels: real-voice people first (so a voice stage can share their centroids), then people
    with several photos; a person with one photo and no voice gets none."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.person] = counts.get(r.person, 0) + 1
    real = sorted({r.person for r in rows if r.source in REAL_VOICE_SOURCES})
    multi = sorted(p for p, n in counts.items() if n > 1 and p not in set(real))
    return {p: i for i, p in enumerate(real + multi)}


class FaceSet:
    """The train split of a face set, resized once to the model's image size and held in memory."""

    def __init__(self, folder: str | Path, image_size: int, split: str = "train"):
        import cv2

        self.rows = read_rows(Path(folder), split)
        if not self.rows:
            raise ValueError(f"{folder}: no {split} photos in the face set")
        array = np.load(Path(folder) / "faces.npy", mmap_mode="r")
        idx = [r.index for r in self.rows]
        if array.shape[1] == image_size:
            self.images = np.ascontiguousarray(array[idx])
        else:
            self.images = np.stack([cv2.resize(array[i], (image_size, image_size), interpolation=cv2.INTER_AREA)
                                    for i in idx])  # fmt: skip
        self.labels_by_person = identity_labels(self.rows)
        self.label = np.array([self.labels_by_person.get(r.person, -1) for r in self.rows])
        self.gender = np.array([r.gender for r in self.rows])
        self.age = np.array([r.age for r in self.rows], dtype=np.float32)
        self.ethnicity = np.array([r.ethnicity for r in self.rows])
        by_person: dict[str, list[int]] = {}
        for i, r in enumerate(self.rows):
            by_person.setdefault(r.person, []).append(i)
        self.same = [by_person[r.person] for r in self.rows]
        self.real = np.array([r.source in REAL_VOICE_SOURCES for r in self.rows])
        from ..data.pose_labels import read_mouth, read_pose

        self.pose = read_pose(folder, len(array))[idx]
        self.mouth = read_mouth(folder, len(array))[idx]
        said = np.isfinite(self.mouth)
        self.mouth_center = float(np.median(self.mouth[said])) if said.any() else 0.0
        spread = float(np.sqrt(np.mean((self.mouth[said] - self.mouth_center) ** 2))) if said.sum() > 1 else 0.0
        self.mouth_scale = spread if spread > 0 else 1.0
        # Yaw and roll change sign with a mirror image and targets are mirrored half the time, so their
        # centre is 0; pitch's is the set's median (the nose tip sits below the eyes in a level face).
        posed = np.isfinite(self.pose[:, 0])
        self.pose_center = np.array([0.0, np.median(self.pose[posed, 1]), 0.0]) if posed.any() else np.zeros(3)
        spread = np.sqrt(np.mean((self.pose[posed] - self.pose_center) ** 2, axis=0)) if posed.sum() > 1 else 0
        self.pose_scale = np.where(np.asarray(spread) > 0, spread, 1.0) * np.ones(3)

    @property
    def num_labels(self) -> int:
        return len(self.labels_by_person)

    def __len__(self) -> int:
        return len(self.rows)

    def draw(self, n: int, rng: np.random.Generator, real_share: float = 0.0) -> dict[str, torch.Tensor]:
        """n (target, identity photo) pairs with labels; `real_share` of them from real-voice people."""
        n_real = int(round(n * real_share)) if self.real.any() else 0
        real_idx, other_idx = np.flatnonzero(self.real), np.flatnonzero(~self.real)
        if not len(other_idx):
            other_idx, n_real = real_idx, 0
        picks = np.concatenate([rng.choice(real_idx, n_real), rng.choice(other_idx, n - n_real)]).astype(int)
        targets, ids = [], []
        pose = (self.pose[picks] - self.pose_center) / self.pose_scale
        for row, i in enumerate(picks):
            same = self.same[i]
            j = int(rng.choice([k for k in same if k != i])) if len(same) > 1 else int(i)
            target = self.images[i]
            if rng.random() < 0.5:
                target = target[:, ::-1]
                pose[row, [0, 2]] *= -1  # a mirrored head turns and tilts the other way
            targets.append(target)
            ids.append(_reframe(self.images[j], rng, fresh=j == i))
        return {
            "frame": _tensor(targets),
            "first": _tensor(ids),
            "label": torch.from_numpy(self.label[picks]).long(),
            "gender": torch.from_numpy(self.gender[picks]).long(),
            "age": torch.from_numpy(self.age[picks]),
            "ethnicity": torch.from_numpy(self.ethnicity[picks]).long(),
            "pose": torch.from_numpy(pose.astype(np.float32)),  # NaN rows: no label
            "mouth": torch.from_numpy(((self.mouth[picks] - self.mouth_center) / self.mouth_scale).astype(np.float32)),
        }


def _reframe(image: np.ndarray, rng: np.random.Generator, fresh: bool) -> np.ndarray:
    """The identity photo as the encoder should not care about: mirrored, and for a photo that is also
    the target, re-framed (scale, shift) and re-lit, so only who it is carries over."""
    import cv2

    if rng.random() < 0.5:
        image = image[:, ::-1]
    if not fresh:
        return image
    size = image.shape[0]
    scale = rng.uniform(0.9, 1.1)
    shift = rng.uniform(-0.05, 0.05, 2) * size
    m = np.array([[scale, 0, (1 - scale) * size / 2 + shift[0]], [0, scale, (1 - scale) * size / 2 + shift[1]]])
    out = cv2.warpAffine(np.ascontiguousarray(image), m, (size, size), borderMode=cv2.BORDER_REFLECT)
    gain = rng.uniform(0.8, 1.2, 3) * rng.uniform(0.85, 1.15)
    return np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _tensor(images: list[np.ndarray]) -> torch.Tensor:
    arr = np.stack([np.ascontiguousarray(im) for im in images]).astype(np.float32)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).div_(127.5).sub_(1.0)
