"""`s2tf data ge2e OUT`: resemblyzer's pretrained GE2E speaker encoder as a safetensors file for
the recipe's `audio_identity_init`.

resemblyzer (Apache-2.0, on PyPI with its weights inside) ships them as a torch pickle, the one pickle
this project reads: once, here, with torch's restricted loader (`weights_only=True`: tensors and plain
containers only, no code), and nothing but the encoder's LSTM and linear tensors leave it. Everything
after (training, exported weights, the tool) reads the safetensors.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from ..errors import UsageError

KEYS = ("lstm.", "linear.")  # resemblyzer's VoiceEncoder also holds GE2E's loss scalars (similarity_*)


def resemblyzer_weights() -> Path:
    """The installed resemblyzer's `pretrained.pt`, found without importing it (it imports webrtcvad)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("resemblyzer is not installed: pip install 'resemblyzer==0.1.4' --no-deps "
                         "(or give the weights file with --source)")  # fmt: skip
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


def export_ge2e(out: Path, source: Path | None = None) -> dict[str, int]:
    from safetensors.torch import save_file

    source = source or resemblyzer_weights()
    if not source.is_file():
        raise UsageError(f"{source}: no such file")
    try:
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  any unreadable file is the user's input error
        raise UsageError(f"{source}: not a resemblyzer checkpoint ({type(exc).__name__}: {exc})") from None
    state = checkpoint.get("model_state", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise UsageError(f"{source}: not a resemblyzer checkpoint (no model_state)")
    tensors = {k: v.contiguous() for k, v in state.items() if k.startswith(KEYS) and isinstance(v, torch.Tensor)}
    if "lstm.weight_ih_l0" not in tensors or "linear.weight" not in tensors:
        raise UsageError(f"{source}: not a resemblyzer checkpoint (no lstm/linear weights)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file(tensors, str(tmp), metadata={"source": "resemblyzer 0.1.4 pretrained.pt (GE2E)", "license": "Apache-2.0"})
    tmp.replace(out)
    layers = sum(1 for k in tensors if k.startswith("lstm.weight_ih_l"))
    return {"tensors": len(tensors), "mels": tensors["lstm.weight_ih_l0"].shape[1],
            "hidden": tensors["linear.weight"].shape[0], "layers": layers}  # fmt: skip
