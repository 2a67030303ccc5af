"""Which dtype to compute in: bf16 where the hardware does it natively, fp32 elsewhere (shared by
inference and training)."""

from __future__ import annotations

import torch

from .errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 arithmetic is native here (CUDA with bf16, or a CPU with AVX512-BF16 or AMX). On other
    CPUs oneDNN emulates it, slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # an older torch without the probes
        return False


def select_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype the per-frame networks (content encoder, generator) run in; None is fp32. "auto" takes
    bf16 where it is native: 1.4x the frames/s on a 2-core AVX512-BF16 CPU, images within a few levels."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be auto, fp32 or bf16, not {precision!r}")
    if precision == "bf16" or (precision == "auto" and native_bf16(device)):
        return torch.bfloat16
    return None
