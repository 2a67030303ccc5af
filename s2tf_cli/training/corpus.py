"""Reading a prepared corpus and drawing training batches from it.

Every batch is a pure function of (seed, step, rank): resuming at step N draws exactly the batches
a run that never stopped would have drawn. A batch holds B distinct identities (in-batch negatives
of Eq. 1 are then always other people).
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import augment
from ..corpus_format import read_manifest


@dataclass
class Clip:
    path: Path
    identity: str
    label: int
    frames: int
    samples: int
    gender: str = "unknown"
    voice: str = "synthetic"  # "real": the person's own recordings


class Shard:
    """One decoded clip: JPEG frames decoded on demand, audio as float32."""

    def __init__(self, path: Path):
        with np.load(path, allow_pickle=False) as data:
            self.jpeg = data["jpeg"]
            self.offsets = data["offsets"]
            self.audio = data["audio"].astype(np.float32) / 32767.0
            self.fps = float(data["fps"])
            self.sample_rate = int(data["sample_rate"])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def frame(self, i: int) -> np.ndarray:
        import cv2

        buf = self.jpeg[self.offsets[i] : self.offsets[i + 1]]
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


class Corpus:
    def __init__(self, folder: str | Path, split: str = "train", cache: int = 256):
        self.folder = Path(folder)
        rows = read_manifest(self.folder)
        self.clips = [
            Clip(self.folder / r["path"], r["identity"], int(r["label"]), int(r["frames"]), int(r["samples"]),
                 r.get("gender", "unknown"), r.get("voice", "synthetic"))
            for r in rows if r["split"] == split
        ]  # fmt: skip
        if not self.clips:
            raise ValueError(f"{self.folder}: no {split} clips")
        self.by_identity: dict[str, list[int]] = defaultdict(list)
        for i, c in enumerate(self.clips):
            self.by_identity[c.identity].append(i)
        self.identities = sorted(self.by_identity)
        self.num_labels = max(c.label for c in self.clips) + 1
        real = {c.identity for c in self.clips if c.voice == "real"}
        self.real_voice_indices = np.array([i for i, name in enumerate(self.identities) if name in real], dtype=int)
        self._cache: OrderedDict[Path, Shard] = OrderedDict()
        self._cache_size = cache

    def shard(self, clip: Clip) -> Shard:
        s = self._cache.get(clip.path)
        if s is None:
            s = Shard(clip.path)
            self._cache[clip.path] = s
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(clip.path)
        return s


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    arr = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


@dataclass
class BatchSpec:
    batch_size: int
    identity_window: int  # audio samples per identity window (3.2 s)
    content_window: int  # mel frames per content window
    hop: int  # audio samples per mel frame
    context: int  # extra audio samples each side of a content window (>= n_fft / 2, a multiple of hop)
    image_size: int = 0  # frames are resized to this when the corpus was prepared at another size
    content_negatives: int = 0  # off-sync windows from the same clip per sample
    audio_augment: bool = True
    real_voice_share: float = 0.0  # of each audio batch, drawn from the real-voice people (TrainConfig)


def _sized(image: np.ndarray, size: int) -> np.ndarray:
    from ..images import resize

    return resize(image, size) if size and image.shape[0] != size else image


def model_input(frames: list[np.ndarray], size: int) -> torch.Tensor:
    """Corpus frames (uint8) as the encoders take them: (N, 3, size, size) in [-1, 1]."""
    return _to_tensor([_sized(f, size) for f in frames])


def pick_identities(corpus: Corpus, n: int, rng: np.random.Generator, real_share: float = 0.0) -> np.ndarray:
    """n distinct identities (repeats only when the corpus has fewer), round(n * real_share) of them among
    the real-voice people; with no share the draw is the one runs before the option made."""
    n_ids = len(corpus.identities)
    n_real = min(int(round(n * real_share)), len(corpus.real_voice_indices))
    if n_real == 0:
        return rng.choice(n_ids, size=n, replace=n > n_ids)
    real = rng.choice(corpus.real_voice_indices, size=n_real, replace=False)
    rest = np.setdiff1d(np.arange(n_ids), real)
    return np.concatenate([real, rng.choice(rest, size=n - n_real, replace=n - n_real > len(rest))])


def draw_batch(corpus: Corpus, spec: BatchSpec, seed: int, step: int, rank: int = 0,
               audio: bool = True) -> dict[str, torch.Tensor]:  # fmt: skip
    """Frames and audio for all stages: I_1 (identity frame), I_k, I_k+ (augmented), and around frame k
    the audio: an identity window (augmented), the content window, and off-sync content windows.
    `audio=False` (the visual stage uses none) leaves the audio out; the frames are the same either way,
    since the audio draws come from their own random stream."""
    rng = np.random.default_rng([seed, step, rank])
    rng_audio = np.random.default_rng([seed, step, rank, 1])
    picks = pick_identities(corpus, spec.batch_size, rng, spec.real_voice_share if audio else 0.0)
    first, frame_k, frame_k_aug, frame_1_clip, labels = [], [], [], [], []
    id_audio, content_audio, neg_audio = [], [], []
    half = spec.content_window // 2 * spec.hop
    span = spec.content_window * spec.hop + 2 * spec.context
    for p in picks:
        clips = corpus.by_identity[corpus.identities[p]]
        clip = corpus.clips[clips[rng.integers(len(clips))]]
        other = corpus.clips[clips[rng.integers(len(clips))]]  # identity frame from any clip of the person
        shard, other_shard = corpus.shard(clip), corpus.shard(other)
        k = int(rng.integers(len(shard)))
        img_k = _sized(shard.frame(k), spec.image_size)
        first.append(_sized(other_shard.frame(int(rng.integers(len(other_shard)))), spec.image_size))
        frame_k.append(img_k)
        frame_k_aug.append(augment.visual(img_k, rng))
        frame_1_clip.append(_sized(shard.frame(0), spec.image_size))
        labels.append(clip.label)
        if not audio:
            continue
        wave = shard.audio
        ident = augment.crop_or_pad(wave, spec.identity_window, rng_audio)
        id_audio.append(augment.audio(ident, shard.sample_rate, rng_audio) if spec.audio_augment else ident)
        # The same centring as inference (S2TF.content_windows): mel frame round((k + 0.5) / fps * rate).
        centre = int(round((k + 0.5) / shard.fps * shard.sample_rate / spec.hop)) * spec.hop
        content_audio.append(augment.window(wave, centre - half - spec.context, span))
        for _ in range(spec.content_negatives):
            # off by at least 0.2 s, so the window says something else (same person, same clip)
            frames = int(rng_audio.integers(5, 15))
            shift = frames * int(shard.sample_rate / shard.fps) * (1 if rng_audio.random() < 0.5 else -1)
            neg_audio.append(augment.window(wave, centre + shift - half - spec.context, span))
    batch = {
        "first": _to_tensor(first),
        "frame": _to_tensor(frame_k),
        "frame_aug": _to_tensor(frame_k_aug),
        "clip_first": _to_tensor(frame_1_clip),
        "label": torch.tensor(labels, dtype=torch.long),
    }
    if audio:
        batch["id_audio"] = torch.from_numpy(np.stack(id_audio))
        batch["content_audio"] = torch.from_numpy(np.stack(content_audio))
    if neg_audio:
        batch["neg_audio"] = torch.from_numpy(np.stack(neg_audio))
    return batch


def draw_photos(
    photos: Corpus, n: int, image_size: int, seed: int, step: int, rank: int = 0
) -> dict[str, torch.Tensor]:
    """Stage-1 frames of n people from a photo corpus (`s2tf data photos`), in `draw_batch`'s keys. The
    identity frame is another photo of the person where there is one, and mirrored half the time, so
    that with a single photo it is still not the target's own pixels."""
    rng = np.random.default_rng([seed, step, rank, 2])
    first, frame_k, frame_k_aug, frame_1_clip = [], [], [], []
    for p in pick_identities(photos, n, rng):
        shard = photos.shard(photos.clips[photos.by_identity[photos.identities[p]][0]])
        k, j = int(rng.integers(len(shard))), int(rng.integers(len(shard)))
        img_k = _sized(shard.frame(k), image_size)
        ident = _sized(shard.frame(j), image_size)
        first.append(np.ascontiguousarray(ident[:, ::-1]) if rng.random() < 0.5 else ident)
        frame_k.append(img_k)
        frame_k_aug.append(augment.visual(img_k, rng))
        frame_1_clip.append(_sized(shard.frame(0), image_size))
    return {"first": _to_tensor(first), "frame": _to_tensor(frame_k), "frame_aug": _to_tensor(frame_k_aug),
            "clip_first": _to_tensor(frame_1_clip), "label": torch.full((n,), -1, dtype=torch.long)}  # fmt: skip


def join_batches(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The two batches' samples one after the other (keys both have)."""
    return {k: torch.cat([a[k], b[k]]) for k in a if k in b}
