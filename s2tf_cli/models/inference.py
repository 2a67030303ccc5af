"""Rewrites of a loaded model for inference only (the pipeline's copy; training never sees them)."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d into the Conv2d that feeds it (in a Sequential, or a block's
    `convN`/`bnN` pair): the same function with one pass less over each activation. Returns the count."""
    folded = 0
    for parent in model.modules():
        pairs: list[tuple[str, str]] = []
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            pairs = list(zip(names, names[1:]))
        else:
            pairs = [(f"conv{i}", f"bn{i}") for i in range(1, 4)]
        for conv_name, bn_name in pairs:
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and not bn.training:
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
                folded += 1
    return folded


def use_inference_path(model: nn.Module) -> int:
    """Switch every styled convolution to its inference form (`StyledConv._inference`: the same maths with
    fewer passes over the activations), chosen here once, as `fold_batchnorm` is. Returns the count."""
    from .generator import StyledConv

    convs = [m for m in model.modules() if isinstance(m, StyledConv)]
    for conv in convs:
        conv.inference = True
    return len(convs)
