"""`s2tf export CKPT OUT`: a training checkpoint -> the Hub-layout weights folder the tool loads.

The generator is the EMA copy; encoders and centroids are taken as trained. The discriminator and
optimiser states stay behind.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from safetensors.torch import load_file

from ..hub import save_folder
from ..modelcard import model_card
from ..models.s2tf import S2TFModel
from .checkpoint import checkpoints
from .config import TrainConfig


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint folder, or a run folder (its newest checkpoint)."""
    path = Path(path)
    if (path / "module.safetensors").is_file():
        return path
    found = checkpoints(path / "checkpoints") or checkpoints(path)
    if not found:
        raise FileNotFoundError(f"{path}: no checkpoint found")
    return found[0]


def export(ckpt: Path, out: Path, cfg: TrainConfig | None = None, details: str | None = None) -> Path:
    """`details` (model card text) defaults to the run's recipe, stage times and losses."""
    ckpt = resolve_checkpoint(ckpt)
    if details is None:
        from .card import run_details

        details = run_details(ckpt.parent.parent)
    if cfg is None:
        for candidate in (ckpt.parent.parent / "train_config.json", ckpt.parent / "train_config.json"):
            if candidate.is_file():
                cfg = TrainConfig.load(candidate)
                break
        else:
            raise FileNotFoundError(f"{ckpt}: no train_config.json beside the run; pass the config")
    state = load_file(str(ckpt / "module.safetensors"))
    ema = load_file(str(ckpt / "ema.safetensors"))
    meta = json.loads((ckpt / "state.json").read_text())
    step = int(meta["step"])
    total = step + int(meta.get("extra", {}).get("init_steps", 0))
    model = S2TFModel(dataclasses.replace(cfg.model, trained_steps=total))
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    weights.update({f"generator.{k}": v for k, v in ema.items()})
    model.load_state_dict(weights, strict=True)
    if model.cfg.pose_scale:  # how far this G turns the head for its pose entries (`talk`'s motion)
        from .pose_render import pose_render_share

        model.cfg = dataclasses.replace(model.cfg, pose_render=pose_render_share(model))
    more = f", {step} of them in this run" if total != step else ""
    title = f"s2tf {cfg.model.preset} ({total} training steps{more})"
    return save_folder(model, out, model_card(cfg.model, title, details))
