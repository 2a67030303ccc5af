"""A gallery embedded once: face identity vectors cached by image content and weights.

Detecting, aligning and encoding a face costs far more than scoring it, and a gallery is queried
again and again. Entries are keyed by the sha256 of the image file's bytes (a renamed or moved file
is still found; an edited one is embedded again) and live in one safetensors file per weights
checksum and crop mode, under $S2TF_CACHE (default: the user cache folder, ~/.cache/s2tf).
Images without a usable face (or undecodable) are remembered too, with the reason, so they are not
re-examined.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from .cache import cache_root
from .hub import sha256_file as file_key  # the content key: the same hash weights are checked with

log = logging.getLogger(__name__)


class GalleryIndex:
    """Maps image content hash -> identity vector (or the reason it has none)."""

    def __init__(self, weights_sha256: str, aligned: bool, root: Path | None = None):
        self.path = (root or cache_root()) / "galleries" / f"{weights_sha256[:32]}-{'aligned' if aligned else 'detect'}.safetensors"
        self.vectors: dict[str, torch.Tensor] = {}
        self.failures: dict[str, str] = {}
        self.changed = False
        self._load()

    def _load(self) -> None:
        from safetensors import safe_open

        if not self.path.is_file():
            return
        try:
            with safe_open(str(self.path), framework="pt") as fh:
                meta = fh.metadata() or {}
                keys = json.loads(meta.get("keys", "[]"))
                self.failures = json.loads(meta.get("failures", "{}"))
                if keys:
                    matrix = fh.get_tensor("vectors")
                    self.vectors = {k: matrix[i] for i, k in enumerate(keys)}
        except Exception as exc:  # a damaged cache is only a cache: start afresh
            log.warning("%s: gallery cache unreadable (%s); rebuilding it", self.path, type(exc).__name__)
            self.vectors, self.failures = {}, {}

    def add(self, key: str, vector: torch.Tensor) -> None:
        self.vectors[key] = vector.detach().float().cpu()
        self.changed = True

    def fail(self, key: str, reason: str) -> None:
        self.failures[key] = reason
        self.changed = True

    def save(self) -> None:
        """Atomically (temp file + rename): concurrent or interrupted runs never leave half a cache."""
        from safetensors.torch import save_file

        if not self.changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.vectors)
        tensors = {"vectors": torch.stack([self.vectors[k] for k in keys]).contiguous()} if keys else {}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        save_file(tensors, str(tmp), metadata={"keys": json.dumps(keys), "failures": json.dumps(self.failures)})
        os.replace(tmp, self.path)
        self.changed = False
