"""dlib's 68 face landmarks (the model ships in face_recognition_models, the `data` extra), and what is read
off them: the inner-lip gap the synthetic corpus animates and the lip-sync figures score."""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from ..errors import MissingDependencyError

_detector = None
_predictor = None


def _landmark_model() -> str:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("the synthetic corpus needs dlib's landmarks: pip install 's2tf[data]'")
    root = list(spec.submodule_search_locations)[0]
    return os.path.join(root, "models", "shape_predictor_68_face_landmarks.dat")


def landmarks68(image: np.ndarray) -> np.ndarray | None:
    """(68, 2) dlib landmarks of the largest face, or None."""
    global _detector, _predictor
    import dlib

    if _detector is None:
        _detector = dlib.get_frontal_face_detector()
        _predictor = dlib.shape_predictor(_landmark_model())
    faces = _detector(image, 1)
    if not faces:
        return None
    face = max(faces, key=lambda r: r.width() * r.height())
    shape = _predictor(image, face)
    return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip gap over mouth width from dlib's 68 landmarks (pairs 61-67, 62-66, 63-65 over corners
    48-54): 0 for closed lips, ~0.3-0.5 wide open, whatever the face's size in the frame."""
    p = np.asarray(points, np.float64)
    gap = np.mean([np.linalg.norm(p[a] - p[b]) for a, b in ((61, 67), (62, 66), (63, 65))])
    width = np.linalg.norm(p[48] - p[54])
    return float(gap / width) if width > 0 else float("nan")
