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


def mouth_plot(opening: np.ndarray, loud: np.ndarray, width: int = 640, height: int = 200) -> np.ndarray:
    """Mouth opening (red; inner-lip gap / mouth width, gaps where no face was found) and audio loudness
    (blue) per frame, each scaled to the plot."""
    import cv2

    n = len(loud)
    img = np.full((height, width, 3), 255, np.uint8)
    xs = np.linspace(10, width - 10, n)
    for series, colour in ((np.asarray(loud, float), (40, 80, 220)), (np.asarray(opening, float), (220, 40, 40))):
        ok = np.isfinite(series)
        if not ok.any():
            continue
        lo, span = series[ok].min(), np.ptp(series[ok])
        y = height - 20 - (series - lo) / (span if span > 0 else 1) * (height - 40)
        runs = np.split(np.arange(n), np.flatnonzero(np.diff(ok.astype(int))) + 1)
        for run in runs:
            if ok[run[0]]:
                pts = np.stack([xs[run], y[run]], axis=1).astype(np.int32)
                cv2.polylines(img, [pts], False, colour, 2, cv2.LINE_AA)
    cv2.putText(img, "mouth opening (red) vs loudness (blue), per frame", (10, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    return img


def write_figures(s2tf, folder: Path, people, generated, reals) -> list[Path]:
    from .protocol import reconstruct_talk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = provenance(s2tf.weights_label, "eval")
    size = s2tf.cfg.image_size
    written = []

    def save(name: str, image: np.ndarray) -> None:
        write_bytes_atomic(folder / name, images.png_bytes(image, meta))
        written.append(folder / name)

    save("voice_to_face.png", pairs_grid(people, generated, size))
    shared = s2tf.can_embed_faces  # a baseline without a face encoder draws faces only
    if shared:
        save("retrieval.png", retrieval_sheet(s2tf, people))
    clip = next((p for p in people if p.frames is not None and len(p.frames) > 10), None) if shared else None
    if clip is not None:
        from ..judges.landmarks import landmarks68
        from . import metrics as M
        from .protocol import frame_landmarks, mouth_openings

        gen = reconstruct_talk(s2tf, clip.frames[0], clip.voice, len(clip.frames))
        opening = mouth_openings(frame_landmarks(gen, landmarks68))
        save("mouth_vs_loudness.png", mouth_plot(opening, M.frame_loudness(clip.voice, len(gen))))
    if reals:
        save("real_people.png", pairs_grid(reals, [s2tf.face(p.voice)[0] for p in reals], size, count=len(reals)))
    return written
