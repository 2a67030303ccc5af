"""An independent face embedder for the identity metrics: dlib's 128-d face-recognition ResNet.

The paper scored identity with FaceNet, a network the model never trained against; dlib's embedder
(installed offline with its weights by the `data` extra) plays that role here. Same person: distance
~0.46 on CelebA; different people: ~0.84.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from ..errors import MissingDependencyError

_UPSCALE_TO = 256  # dlib's HOG detector misses faces smaller than ~80 px: small crops are upscaled first


def _model_file(name: str) -> str:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("evaluation needs dlib's face models: pip install 's2tf[data]'")
    return os.path.join(list(spec.submodule_search_locations)[0], "models", name)


class FaceEmbedder:
    """128-d embeddings of face crops; a crop where no face is found is embedded from the whole
    frame (generated faces are aligned crops) and counted in `misses`."""

    def __init__(self) -> None:
        import dlib

        self._dlib = dlib
        self._detect = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(_model_file("shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(_model_file("dlib_face_recognition_resnet_model_v1.dat"))
        self.misses = 0
        self.calls = 0

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        import cv2

        h, w = image.shape[:2]
        if max(h, w) < _UPSCALE_TO:
            s = _UPSCALE_TO / max(h, w)
            image = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
        return np.ascontiguousarray(image)

    def box(self, image: np.ndarray):
        """The largest detected face, or the central box a face crop's face occupies."""
        dets = self._detect(image, 1)
        self.calls += 1
        if dets:
            return max(dets, key=lambda r: r.area())
        self.misses += 1
        h, w = image.shape[:2]
        return self._dlib.rectangle(int(w * 0.18), int(h * 0.18), int(w * 0.82), int(h * 0.86))

    def embed(self, image: np.ndarray) -> np.ndarray:
        image = self._prepare(image)
        shape = self._shape(image, self.box(image))
        chip = self._dlib.get_face_chip(image, shape, size=150, padding=0.25)
        return np.asarray(self._net.compute_face_descriptor(chip), dtype=np.float32)

    def embed_many(self, images) -> np.ndarray:
        return np.stack([self.embed(im) for im in images]) if len(images) else np.zeros((0, 128), np.float32)
