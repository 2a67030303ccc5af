"""A gallery embedded once: face identity vectors cached by image content and weights.

Detecting, aligning and encoding a face costs far more than scoring it, and a gallery is queried
again and again. Entries are keyed by the sha256 of the image file's bytes (a renamed or moved file
is still found; an edited one is embedded again) and live in one safetensors file per weights
checksum and crop mode, under $S2TF_CACHE (default: the user cache folder, ~/.cache/s2tf).
Images without a usable face (or undecodable) are remembered too, with the reason, so they are not
re-examined.

The CLI also remembers each query voice's identity vector (by content, per weights), so a repeat
query, the same voice against an indexed gallery, is answered here with numpy alone: no torch import,
no model load (`cached_retrieval`). This module never imports torch for that reason.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import cache_root
from .hub import sha256_file as file_key  # the content key: the same hash weights are checked with

log = logging.getLogger(__name__)


@dataclass
class Match:
    path: Path
    score: float
    rank: int


@dataclass
class Skipped:
    path: Path
    reason: str


class EmbeddingIndex:
    """Maps content hash -> float32 vector (or the reason it has none), in one safetensors file."""

    def __init__(self, path: Path):
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        self.failures: dict[str, str] = {}
        self.changed = False
        self._load()

    def _load(self) -> None:
        from safetensors import safe_open

        if not self.path.is_file():
            return
        try:
            with safe_open(str(self.path), framework="numpy") as fh:
                meta = fh.metadata() or {}
                keys = json.loads(meta.get("keys", "[]"))
                self.failures = json.loads(meta.get("failures", "{}"))
                if keys:
                    matrix = fh.get_tensor("vectors")
                    self.vectors = {k: matrix[i] for i, k in enumerate(keys)}
        except Exception as exc:  # a damaged cache is only a cache: start afresh
            log.warning("%s: cache unreadable (%s); rebuilding it", self.path, type(exc).__name__)
            self.vectors, self.failures = {}, {}

    def add(self, key: str, vector: np.ndarray) -> None:
        self.vectors[key] = np.asarray(vector, dtype=np.float32).copy()
        self.changed = True

    def fail(self, key: str, reason: str) -> None:
        self.failures[key] = reason
        self.changed = True

    def save(self) -> None:
        """Atomically (temp file + rename): concurrent or interrupted runs never leave half a cache."""
        from safetensors.numpy import save_file

        if not self.changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.vectors)
        tensors = {"vectors": np.ascontiguousarray(np.stack([self.vectors[k] for k in keys]))} if keys else {}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        save_file(tensors, str(tmp), metadata={"keys": json.dumps(keys), "failures": json.dumps(self.failures)})
        os.replace(tmp, self.path)
        self.changed = False


# How a gallery face is embedded (pipeline.S2TF.photo_identities: the photo's f_id^v with its mirror's). It
# names the index file, so vectors embedded another way (an older release's) are never mixed in.
FACE_EMBEDDING = "mirrored"


class GalleryIndex(EmbeddingIndex):
    """Gallery faces' f_id^v, per weights checksum, crop mode (detected or given aligned) and FACE_EMBEDDING."""

    def __init__(self, weights_sha256: str, aligned: bool, root: Path | None = None):
        mode = "aligned" if aligned else "detect"
        name = f"{weights_sha256[:32]}-{mode}-{FACE_EMBEDDING}.safetensors"
        super().__init__((root or cache_root()) / "galleries" / name)


class VoiceIndex(EmbeddingIndex):
    """Query voices' f_id^a, per weights checksum (only voices the CLI was asked to rank with)."""

    def __init__(self, weights_sha256: str, root: Path | None = None):
        super().__init__((root or cache_root()) / "galleries" / f"{weights_sha256[:32]}-voices.safetensors")


def rank(paths: Sequence[Path], vectors: Sequence[np.ndarray], query: np.ndarray) -> list[Match]:
    """Cosine ranking (vectors are unit length), best first, ties by path: the one ranking both the
    model's path and the cached path use, so both print the same table."""
    if not len(paths):
        return []
    scores = np.stack(vectors).astype(np.float64) @ np.asarray(query, dtype=np.float64)
    order = sorted(range(len(paths)), key=lambda i: (-scores[i], str(paths[i])))
    return [Match(Path(paths[i]), float(scores[i]), r + 1) for r, i in enumerate(order)]


def cached_retrieval(
    voice: Path, gallery: Sequence[Path], weights_sha256: str, aligned: bool
) -> tuple[list[Match], list[Skipped]] | None:
    """The ranking from the indexes alone, or None when anything (the voice, an image) is not in them."""
    try:
        query = VoiceIndex(weights_sha256).vectors.get(file_key(voice))
        if query is None:
            return None
        index = GalleryIndex(weights_sha256, aligned)
        keys = [file_key(path) for path in gallery]
    except OSError:  # unreadable: the model's path reports it properly
        return None
    kept, vectors, skipped = [], [], []
    for path, key in zip(gallery, keys):
        if key in index.vectors:
            kept.append(path)
            vectors.append(index.vectors[key])
        elif key in index.failures:
            skipped.append(Skipped(path, f"{path}: {index.failures[key]}"))
        else:
            return None
    return rank(kept, vectors, query), skipped
