"""Contact sheets: the top retrieval matches side by side, each labelled with rank and score."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import images


def contact_sheet(matches: Sequence, tile: int = 128, columns: int = 5) -> np.ndarray:
    """`matches`: objects with .path, .rank, .score. Unreadable files become grey tiles."""
    import cv2

    tiles = []
    for m in matches:
        try:
            img = images.load_image(m.path)
            h, w = img.shape[:2]
            side = min(h, w)
            img = images.resize(img[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2], tile)
        except Exception:
            img = np.full((tile, tile, 3), 128, np.uint8)
        label = np.full((22, tile, 3), 255, np.uint8)
        cv2.putText(
            label, f"#{m.rank}  {m.score:.3f}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
        )
        tiles.append(np.concatenate([img, label], axis=0))
    return images.grid(tiles, columns=min(columns, len(tiles)))
