"""Training checkpoints without pickles: tensors in safetensors, the rest in JSON.

A checkpoint is a folder `ckpt-NNNNNNN/` written under a temporary name and renamed when complete,
so a kill at any moment leaves either the previous checkpoints or a complete new one. Loading
walks from the newest back, skipping any that fail to load (a corrupt last checkpoint falls back
to the one before).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)

PREFIX = "ckpt-"


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in list(tensors.items()) + list(meta["scalars"].items()):
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save(folder: Path, step: int, module: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer],
         ema: dict[str, torch.Tensor], extra: dict, keep: int = 2) -> Path:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{PREFIX}{step:07d}"
    tmp = folder / f".tmp-{PREFIX}{step:07d}-{os.getpid()}"
    for stale in folder.glob(f".tmp-{PREFIX}*"):  # half-written by a killed run (only one process saves)
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(tmp / "module.safetensors")
    )
    save_file({k: v.detach().cpu().contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
    meta = {"step": step, "extra": extra, "optimizers": {}}
    for name, opt in optimizers.items():
        tensors, opt_meta = _flatten_optimizer(opt)
        save_file(tensors, str(tmp / f"optim-{name}.safetensors"))
        meta["optimizers"][name] = opt_meta
    (tmp / "state.json").write_text(json.dumps(meta))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in sorted(folder.glob(f"{PREFIX}*"))[:-keep]:
        # renamed first (atomic), so a kill mid-delete leaves a stale .tmp- folder, never a ckpt- one half gone
        doomed = folder / f".tmp-{old.name}-old-{os.getpid()}"
        os.replace(old, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    return final


def checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{PREFIX}*"), reverse=True) if folder.is_dir() else []


def load_latest(folder: Path, module: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer],
                ema: dict[str, torch.Tensor]) -> tuple[int, dict] | None:  # fmt: skip
    """Restore the newest loadable checkpoint in place; (step, extra) or None when there is none."""
    for ckpt in checkpoints(folder):
        try:
            meta = json.loads((ckpt / "state.json").read_text())
            state = load_file(str(ckpt / "module.safetensors"))
            ema_state = load_file(str(ckpt / "ema.safetensors"))
            opt_states = {
                name: _unflatten_optimizer(load_file(str(ckpt / f"optim-{name}.safetensors")), meta["optimizers"][name])
                for name in optimizers
            }
        except Exception as exc:  # corrupt or partial: fall back to the previous checkpoint
            log.warning("%s: cannot load (%s); trying an older checkpoint", ckpt, type(exc).__name__)
            continue
        device = next(module.parameters()).device
        module.load_state_dict(state, strict=True)
        for name, opt in optimizers.items():
            opt.load_state_dict(opt_states[name])
        for k, v in ema_state.items():
            ema[k].copy_(v.to(device))
        return int(meta["step"]), meta.get("extra", {})
    return None
