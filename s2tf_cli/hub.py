"""Weights folders: resolve a name, repo id or path to a local folder, then load it strictly.

A weights folder is the Hugging Face Hub layout: config.json + model.safetensors + README.md.
Nothing is ever unpickled. Hub downloads go through huggingface_hub's cache, so HF_HOME,
HF_HUB_CACHE and HF_HUB_OFFLINE behave as everywhere else.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .config import ConfigError, ModelConfig
from .errors import WeightsError
from .registry import DEFAULT_WEIGHTS, REGISTRY, RegistryEntry

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


@dataclass
class WeightsSource:
    """Where a loaded model came from: enough to reproduce it and to stamp outputs with it."""

    spec: str  # what the user asked for
    folder: Path
    kind: str  # "embedded", "hub" or "local"
    revision: str  # Hub commit, or "local"
    sha256: str  # of model.safetensors

    @property
    def label(self) -> str:
        return f"{self.spec}@{self.revision[:12]} (sha256 {self.sha256[:12]})"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def embedded_root() -> Path:
    """Where the embedded weights folders live: the installed `s2tf_cli.weights`, or `weights/` beside
    the package in a source checkout."""
    try:
        return Path(str(resources.files("s2tf_cli.weights")))
    except ModuleNotFoundError:  # imported from a source checkout
        return Path(__file__).resolve().parent.parent / "weights"


def embedded_folder(entry: RegistryEntry) -> Path | None:
    if entry.embedded is None:
        return None
    folder = embedded_root() / entry.embedded
    return folder if (folder / WEIGHTS_FILE).is_file() else None


PIN = "@sha256:"


def resolve(spec: str | None = None, cache_dir: str | Path | None = None) -> WeightsSource:
    """A local folder for `spec`: an existing path, a registry name, or `org/name[@revision]`; any of them
    may end in `@sha256:HEX` (12 or more digits of model.safetensors' sha256), so that a recipe's `init`
    never silently means other weights when a name moves to a newer model."""
    spec = spec or os.environ.get("S2TF_WEIGHTS") or DEFAULT_WEIGHTS
    if PIN not in spec:
        return _resolve(spec, cache_dir)
    name, _, pinned = spec.partition(PIN)
    pinned = pinned.lower()
    if len(pinned) < 12 or any(c not in "0123456789abcdef" for c in pinned):
        raise WeightsError(f"{spec}: a pin is @sha256: and at least 12 hex digits of model.safetensors' sha256")
    source = _resolve(name, cache_dir)
    if not source.sha256.startswith(pinned):
        raise WeightsError(f"{spec}: {name} now holds other weights (sha256 {source.sha256[:12]}...); the pinned "
                           "ones are in the git history of weights/ or at a Hub revision")  # fmt: skip
    return source


def _resolve(spec: str, cache_dir: str | Path | None = None) -> WeightsSource:
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise WeightsError(f"{path}: weights must be a folder holding {CONFIG_FILE} and {WEIGHTS_FILE}")
        return WeightsSource(spec, path, "local", "local", _check_folder(path))
    entry = REGISTRY.get(spec)
    if entry is not None:
        folder = embedded_folder(entry)
        if folder is not None:
            digest = _check_folder(folder)
            if entry.sha256 and digest != entry.sha256:
                raise WeightsError(
                    f"{folder / WEIGHTS_FILE}: checksum mismatch (sha256 {digest[:12]}..., expected "
                    f"{entry.sha256[:12]}...): the installed weights are corrupted; reinstall s2tf"
                )
            return WeightsSource(spec, folder, "embedded", f"embedded-{digest[:12]}", digest)
        if entry.revision is None:
            raise WeightsError(
                f"no weights are installed for {spec!r}: the default model has not been trained and "
                "published yet. Pass --weights with a local weights folder or a Hub repo id (org/name)."
            )
        source = _from_hub(spec, entry.repo_id, entry.revision, cache_dir)
        if entry.sha256 and source.sha256 != entry.sha256:
            raise WeightsError(f"{source.folder / WEIGHTS_FILE}: checksum mismatch for {spec!r}")
        return source
    if "/" in spec and not spec.startswith((".", "/")) and spec.count("/") == 1:
        repo_id, _, revision = spec.partition("@")
        return _from_hub(spec, repo_id, revision or None, cache_dir)
    known = ", ".join(REGISTRY)
    raise WeightsError(f"{spec}: no such folder, and not a known weights name ({known}) or a Hub id (org/name)")


def parameter_count(path: Path) -> int:
    """Numbers stored in a safetensors file (parameters and buffers), read off its JSON header: no tensor is
    loaded, torch is not needed."""
    import json
    import math

    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
    return sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")


MODEL_TYPES = ("s2tf", "voice2face", "syncnet")


def model_type(folder: Path) -> str:
    """What a weights folder holds, from config.json's "model_type" (folders from before it: from the keys
    they have), so that one loader (`s2tf_cli.loader.load`) picks the class."""
    import json

    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot read the weights' config ({exc})") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: the weights' config must be a JSON object")
    kind = data.get("model_type")
    if kind is None:
        if data.get("architecture") == "voice2face":
            kind = "voice2face"
        elif str(data.get("format", "")).startswith("s2tf-syncnet/"):
            kind = "syncnet"
        else:
            kind = "s2tf"
    if kind not in MODEL_TYPES:
        raise WeightsError(f"{path}: model_type {kind!r} is not one this s2tf loads ({', '.join(MODEL_TYPES)})")
    return kind


def folder_info(source: WeightsSource) -> dict:
    """What a weights folder says about itself, without loading the model (`s2tf info`)."""
    kind = model_type(source.folder)
    if kind != "s2tf":
        return {"weights": source.spec, "model_type": kind, "source": source.kind, "folder": str(source.folder),
                "revision": source.revision, "sha256": source.sha256,
                "stored values": parameter_count(source.folder / WEIGHTS_FILE)}  # fmt: skip
    cfg = ModelConfig.load(source.folder / CONFIG_FILE)
    return {"weights": source.spec, "model_type": kind, "source": source.kind, "folder": str(source.folder), "revision": source.revision,
            "sha256": source.sha256, "preset": cfg.preset, "image_size": cfg.image_size, "id_dim": cfg.id_dim,
            "ir_dim": cfg.ir_dim, "identities": cfg.num_identities,
            "head motion": "yes (f_ir carries yaw, pitch, roll)" if cfg.pose_scale else "no (eyes only: blinks, glances)",
            "pose read by": ("its pose reader" if cfg.pose_reader else "E_ir^v") if cfg.pose_scale else "-",
            "stored values": parameter_count(source.folder / WEIGHTS_FILE)}  # fmt: skip


def _from_hub(spec: str, repo_id: str, revision: str | None, cache_dir: str | Path | None) -> WeightsSource:
    from huggingface_hub import snapshot_download

    kwargs = dict(
        repo_id=repo_id,
        revision=revision,
        cache_dir=str(cache_dir) if cache_dir else None,
        allow_patterns=[CONFIG_FILE, WEIGHTS_FILE, CARD_FILE],
    )
    try:
        # The cache first: no network round trip when the model is there.
        folder = snapshot_download(**kwargs, local_files_only=True)
    except Exception:
        if _offline():
            raise WeightsError(
                f"{spec}: not in the Hugging Face cache and HF_HUB_OFFLINE is set; fetch it first with "
                f"`s2tf download {spec}` on a machine with network access (or copy the folder and pass its path)"
            ) from None
        try:
            folder = snapshot_download(**kwargs, etag_timeout=5)
        except Exception as exc:
            raise WeightsError(
                f"{spec}: cannot download from the Hugging Face Hub ({type(exc).__name__}); check the name and "
                "your network, or pass a local weights folder"
            ) from None
    folder = Path(folder)
    return WeightsSource(spec, folder, "hub", folder.name, _check_folder(folder))


def _check_folder(folder: Path) -> str:
    """Refuse folders without safetensors weights (never falling back to a pickle); the weights' sha256."""
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES) if folder.is_dir() else []
        if pickles:
            raise WeightsError(
                f"{folder}: holds only pickle weights ({', '.join(pickles)}); s2tf never loads pickles because "
                f"unpickling can run arbitrary code. Convert them to {WEIGHTS_FILE} with {CONFIG_FILE}."
            )
        raise WeightsError(f"{folder}: no {WEIGHTS_FILE} in this folder")
    if not (folder / CONFIG_FILE).is_file():
        raise WeightsError(f"{folder}: no {CONFIG_FILE} in this folder")
    return sha256_file(weights)


def load_model(source: WeightsSource):
    """Build the model from config.json and load model.safetensors with strict key and shape checks."""
    from .models.s2tf import S2TFModel

    kind = model_type(source.folder)
    if kind != "s2tf":
        raise WeightsError(f"{source.spec}: a {kind} model, not an S2TF model; s2tf_cli.load() loads every kind")
    try:
        cfg = ModelConfig.load(source.folder / CONFIG_FILE)
    except ConfigError as exc:
        raise WeightsError(str(exc)) from None
    model = S2TFModel(cfg)
    model.load_state_dict(load_state(source.folder / WEIGHTS_FILE, model), strict=True)
    return model.eval()


def load_state(path: Path, model) -> dict:
    """The tensors of a safetensors file, checked key by key and shape by shape against `model`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: corrupted weights file ({exc})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise WeightsError(f"{path}: weights do not match the config: {'; '.join(parts)}")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise WeightsError(
                f"{path}: {key} has shape {tuple(tensor.shape)}, config expects {tuple(expected[key].shape)}"
            )
    return state


def save_folder(model, folder: str | Path, card: str) -> Path:
    """Write config.json, model.safetensors and the model card: a folder `resolve` and the Hub accept."""
    from safetensors.torch import save_file

    from . import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.cfg.save(folder / CONFIG_FILE)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt", "s2tf_version": __version__})
    (folder / CARD_FILE).write_text(card)
    return folder


def push_folder(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Publish a weights folder to the Hub; returns the new commit's revision."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    _check_folder(folder)
    ModelConfig.load(folder / CONFIG_FILE)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE, CARD_FILE]
    )
    return getattr(info, "oid", "") or ""
