"""`s2tf eval --figures`: voice -> face next to the real face, a retrieval sheet, mouth vs loudness."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import images
from ..outputs import provenance, write_bytes_atomic


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2

    bar = np.full((20, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text[:24], (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([tile, bar], axis=0)


def pairs_grid(people, generated, size: int, count: int = 16) -> np.ndarray:
    """Columns of (real face, face generated from the voice), labelled with the person's labels."""
    tiles = []
    for p, g in list(zip(people, generated))[:count]:
        tag = f"{p.gender[:1].upper() if p.gender != 'unknown' else '?'} {p.age or ''}".strip()
        tiles += [_label(images.resize(p.face, size), f"real {tag}"), _label(images.resize(g, size), "from voice")]
    return images.grid(tiles, columns=8)


def retrieval_sheet(s2tf, people, queries: int = 4, top: int = 5) -> np.ndarray:
    """Per query voice: its real face, then the gallery's top matches through the identity space."""
    import torch

    size = s2tf.cfg.image_size
    f_v = torch.stack([s2tf.face_identity(p.face, aligned=True) for p in people])
    rows = []
    for p in people[:queries]:
        scores = (f_v @ s2tf.voice_identity(p.voice)).cpu().numpy()
        order = np.argsort(-scores, kind="stable")[:top]
        tiles = [_label(images.resize(p.face, size), "speaker")]
        tiles += [_label(images.resize(people[j].face, size), f"#{r + 1} {scores[j]:.2f}" + (" *" if j == people.index(p) else ""))
                  for r, j in enumerate(order)]  # fmt: skip
        rows.append(np.concatenate(tiles, axis=1))
    return images.grid(rows, columns=1)


def mouth_plot(frames: np.ndarray, voice: np.ndarray, width: int = 640, height: int = 200) -> np.ndarray:
    """Mouth-region change (red) and audio loudness (blue) per frame, each scaled to the plot."""
    import cv2

    n, s = len(frames), frames.shape[1]
    mouth = frames[:, int(s * 0.62) : int(s * 0.85), int(s * 0.3) : int(s * 0.7)].astype(np.float64)
    motion = np.abs(mouth - np.median(mouth, axis=0)).mean(axis=(1, 2, 3))
    hop = len(voice) / n
    loud = np.array([np.sqrt(np.mean(voice[int(i * hop) : int((i + 1) * hop)] ** 2)) for i in range(n)])
    img = np.full((height, width, 3), 255, np.uint8)
    for series, colour in ((loud, (40, 80, 220)), (motion, (220, 40, 40))):
        span = series.max() - series.min()
        y = (series - series.min()) / (span if span > 0 else 1)
        pts = np.stack([np.linspace(10, width - 10, n), height - 20 - y * (height - 40)], axis=1).astype(np.int32)
        cv2.polylines(img, [pts], False, colour, 2, cv2.LINE_AA)
    cv2.putText(img, "mouth change (red) vs loudness (blue), per frame", (10, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    return img


def write_figures(s2tf, folder: Path, people, generated, reals) -> list[Path]:
    from .protocol import _reconstruct_talk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = provenance(s2tf.weights_label, "eval")
    size = s2tf.cfg.image_size
    written = []

    def save(name: str, image: np.ndarray) -> None:
        write_bytes_atomic(folder / name, images.png_bytes(image, meta))
        written.append(folder / name)

    save("voice_to_face.png", pairs_grid(people, generated, size))
    shared = getattr(s2tf, "can_embed_faces", True)  # a baseline without a face encoder draws faces only
    if shared:
        save("retrieval.png", retrieval_sheet(s2tf, people))
    clip = next((p for p in people if p.frames is not None and len(p.frames) > 10), None) if shared else None
    if clip is not None:
        save("mouth_vs_loudness.png", mouth_plot(_reconstruct_talk(s2tf, clip.frames[0], clip.voice, len(clip.frames)), clip.voice))
    if reals:
        save("real_people.png", pairs_grid(reals, [s2tf.face(p.voice)[0] for p in reals], size, count=len(reals)))
    return written
