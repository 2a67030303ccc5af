"""One loader for every weights folder s2tf makes: config.json's "model_type" picks the class."""

from __future__ import annotations

from pathlib import Path

from .hub import WeightsSource, model_type, resolve


def load(
    weights: str | Path | WeightsSource | None = None,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    precision: str = "auto",
):
    """`S2TF` for "s2tf" folders, `Voice2FacePipeline` for "voice2face", `SyncNet` (on `device`) for "syncnet";
    `weights` as `S2TF.from_pretrained` takes them (None: the default)."""
    from .pipeline import S2TF, select_device

    source = (
        weights if isinstance(weights, WeightsSource) else resolve(None if weights is None else str(weights), cache_dir)
    )
    kind = model_type(source.folder)
    if kind == "voice2face":
        from .baselines.voice2face import Voice2FacePipeline, load_voice2face

        return Voice2FacePipeline(load_voice2face(source), select_device(device), source)
    if kind == "syncnet":
        from .evaluation.syncnet import SyncNet

        return SyncNet.load(source.folder).to(select_device(device))
    return S2TF.from_pretrained(source, device=device, precision=precision)
