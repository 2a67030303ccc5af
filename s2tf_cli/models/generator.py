"""G: the style-based generator (StyleGAN2 modulated + demodulated convolutions), paper §3.3.

The style is an MLP over cat(f_id, f_ir); every convolution's weights are scaled per sample by
the style (modulation) and renormalised (demodulation). One block per configured channel count:
the first runs at image_size / 2**(blocks-1) on a learned constant, each later one doubles the
resolution. RGB is accumulated across blocks through skip connections.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import GeneratorConfig


class EqualLinear(nn.Module):
    """Linear layer with the equalised learning rate of StyleGAN (weights scaled at run time)."""

    def __init__(self, cin: int, cout: int, bias_init: float = 0.0, activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.full((cout,), bias_init))
        self.scale = 1 / math.sqrt(cin)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias)
        return F.leaky_relu(out, 0.2) * math.sqrt(2) if self.activation else out


class MappingNetwork(nn.Module):
    """cat(f_id, f_ir) -> style vector w."""

    def __init__(self, in_dim: int, style_dim: int, layers: int):
        super().__init__()
        dims = [in_dim] + [style_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, activation=True) for a, b in zip(dims[:-1], dims[1:])])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class ModulatedConv2d(nn.Module):
    """Conv whose weights are modulated by the style and (optionally) demodulated. StyleGAN2 folds the
    per-sample weights into one grouped convolution; scaling the activations instead is the same maths
    and faster on CPU (a test checks it against the grouped form)."""

    def __init__(self, cin: int, cout: int, kernel: int, style_dim: int, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.modulation = EqualLinear(style_dim, cin, bias_init=1.0)
        self.scale = 1 / math.sqrt(cin * kernel * kernel)
        self.padding = kernel // 2
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.modulation(w)  # (B, cin)
        weight = self.weight * self.scale  # (cout, cin, k, k)
        out = F.conv2d(x * style[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:
            # sum over (cin, k, k) of (w * s)^2 = (s^2) @ sum_k(w^2)^T
            demod = torch.rsqrt(style.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t() + 1e-8)  # (B, cout)
            out = out * demod[:, :, None, None]
        return out


class StyledConv(nn.Module):
    """Modulated conv + per-pixel noise + bias + leaky ReLU."""

    def __init__(self, cin: int, cout: int, style_dim: int, upsample: bool):
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, 3, style_dim)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.upsample = upsample
        self.inference = False  # `models.inference.use_inference_path` sets it on the pipeline's copy

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if self.inference:
            return self._inference(x, w, noise)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv(x, w)
        if noise is not None:
            x = x + self.noise_strength * noise
        return F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * math.sqrt(2)

    def _inference(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """The same maths with fewer passes over the activations (they dominate CPU time): the per-channel
        input modulation commutes with bilinear upsampling, so it runs on the 4x smaller input; leaky_relu
        is positively homogeneous, so the gain sqrt(2) moves into demodulation and shift, and
        demodulation, noise and bias become one fused multiply-add, then one in-place activation. Under
        autocast every activation stays in the autocast dtype (mixed-dtype passes are the slow ones)."""
        conv = self.conv
        style = conv.modulation(w)
        weight = conv.weight * conv.scale
        x = x * style[:, :, None, None].to(x.dtype)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        out = F.conv2d(x, weight, padding=conv.padding)
        gain = torch.rsqrt(style.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t() + 1e-8) * math.sqrt(2)
        shift = self.bias[None, :, None, None] * math.sqrt(2)
        if noise is not None:
            shift = shift + (self.noise_strength * math.sqrt(2)) * noise
        shift = shift.to(out.dtype).contiguous(memory_format=torch.channels_last)  # the result takes its layout
        return F.leaky_relu_(torch.addcmul(shift, out, gain[:, :, None, None].to(out.dtype)), 0.2)


class ToRGB(nn.Module):
    def __init__(self, cin: int, style_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(cin, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        rgb = self.conv(x, w) + self.bias[None, :, None, None]
        if skip is not None:
            rgb = rgb + F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
        return rgb


class StyleBlock(nn.Module):
    def __init__(self, cin: int, cout: int, style_dim: int, upsample: bool):
        super().__init__()
        self.conv1 = StyledConv(cin, cout, style_dim, upsample)
        self.conv2 = StyledConv(cout, cout, style_dim, upsample=False)
        self.to_rgb = ToRGB(cout, style_dim)


class StyleGenerator(nn.Module):
    """(B, id_dim + ir_dim) features -> (B, 3, image_size, image_size) image, roughly in [-1, 1]."""

    def __init__(self, cfg: GeneratorConfig, in_dim: int, image_size: int):
        super().__init__()
        self.cfg = cfg
        self.image_size = image_size
        self.base = image_size // 2 ** (len(cfg.channels) - 1)
        self.mapping = MappingNetwork(in_dim, cfg.style_dim, cfg.mapping_layers)
        self.const = nn.Parameter(torch.randn(1, cfg.channels[0], self.base, self.base))
        if cfg.input not in ("const", "style"):
            raise ValueError(f"generator.input must be 'const' or 'style', not {cfg.input!r}")
        self.input = EqualLinear(cfg.style_dim, cfg.channels[0] * self.base**2) if cfg.input == "style" else None
        self.blocks = nn.ModuleList()
        cin = cfg.channels[0]
        for i, cout in enumerate(cfg.channels):
            self.blocks.append(StyleBlock(cin, cout, cfg.style_dim, upsample=i > 0))
            cin = cout

    def make_noise(self, seed: int, device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """Fixed per-layer noise maps (1, 1, H, W) drawn on the CPU, so the same seed gives the same image
        on every device."""
        gen = torch.Generator().manual_seed(seed)
        maps = []
        for i in range(len(self.blocks)):
            size = self.base * 2**i
            maps += [torch.randn(1, 1, size, size, generator=gen).to(device) for _ in range(2)]
        return maps

    def forward(self, features: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """`noise`: maps from `make_noise` (deterministic) or None for fresh random noise (training)."""
        assert features.dim() == 2, f"expected (B, features), got {tuple(features.shape)}"
        b = features.shape[0]
        w = self.mapping(features)
        x = self.const.expand(b, -1, -1, -1)
        if self.input is not None:
            x = x + self.input(w).view(b, -1, self.base, self.base)
        if self.blocks[0].conv1.inference:
            x = x.contiguous(memory_format=torch.channels_last)
        rgb = None
        for i, block in enumerate(self.blocks):
            n1 = n2 = None
            if self.cfg.noise:
                if noise is None:
                    size = self.base * 2**i
                    n1, n2 = (torch.randn(b, 1, size, size, device=features.device) for _ in range(2))
                else:
                    n1, n2 = noise[2 * i], noise[2 * i + 1]
            x = block.conv1(x, w, n1)
            x = block.conv2(x, w, n2)
            rgb = block.to_rgb(x, w, rgb)
        return rgb
