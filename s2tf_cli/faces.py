"""Finding and cropping the face in a pose reference or gallery image.

OpenCV's bundled Haar cascade finds the face (no weights to download); the crop is a square
around it with the margin used for training crops, so encoders see faces framed as in training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .images import DETECT_MAX_SIDE, resize, soft_pad

log = logging.getLogger(__name__)

# Crop side relative to the detected box side; the box is shifted down to include the chin.
CROP_SCALE = 1.6
CROP_SHIFT = 0.08


@dataclass
class FaceBox:
    x: float
    y: float
    w: float
    h: float

    @property
    def area(self) -> float:
        return self.w * self.h


_cascade = None


def detect_faces(image: np.ndarray) -> list[FaceBox]:
    """Boxes in the image's own pixel coordinates, largest first."""
    global _cascade
    import cv2

    if _cascade is None:
        _cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    h, w = image.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale)))) if scale < 1 else image
    gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    # A border lets the cascade find faces that fill the frame (tight crops such as VoxCeleb's).
    border = max(gray.shape) // 4
    gray = cv2.copyMakeBorder(gray, border, border, border, border, cv2.BORDER_CONSTANT, value=0)
    min_side = max(20, min(small.shape[:2]) // 8)
    found = _cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
    boxes = [FaceBox((x - border) / scale, (y - border) / scale, bw / scale, bh / scale) for (x, y, bw, bh) in found]
    return sorted(boxes, key=lambda b: -b.area)


def crop_face(image: np.ndarray, box: FaceBox, size: int) -> np.ndarray:
    """Square crop around `box` (soft-padded where it leaves the image), resized to `size`."""
    side = max(box.w, box.h) * CROP_SCALE
    cx = box.x + box.w / 2
    cy = box.y + box.h / 2 + CROP_SHIFT * box.h
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    h, w = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + s - w, y0 + s - h)
    if pad:
        image = soft_pad(image, pad)
        x0, y0 = x0 + pad, y0 + pad
    return resize(image[y0 : y0 + s, x0 : x0 + s], size)


def find_face(image: np.ndarray, size: int) -> tuple[np.ndarray | None, int]:
    """The largest face cropped to `size`, and how many faces were found (0: None)."""
    boxes = detect_faces(image)
    if not boxes:
        return None, 0
    return crop_face(image, boxes[0], size), len(boxes)
