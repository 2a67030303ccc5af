"""Voice2Face-style baseline (Wen et al., NeurIPS 2019): the comparison row of `s2tf eval`.

A voice embedder (speaker classification, then frozen) feeds a DCGAN generator that is trained by a
real/fake discriminator and an identity classifier on real faces. No face encoder, no shared space,
no content path: it draws a face from a voice and nothing else, so `s2tf eval` scores it on the
face-from-voice metrics only. Its weights use the same folder layout as S2TF's (config.json with
`"architecture": "voice2face"` + model.safetensors), loaded with the same strict checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import FORMAT_VERSION, AudioConfig, AudioIdentityConfig, ConfigError, _build, load_json, save_json
from ..errors import UsageError
from ..hub import CONFIG_FILE, WEIGHTS_FILE, WeightsError, WeightsSource, load_state
from ..models.audio_identity import AudioIdentityEncoder
from ..models.mel import LogMel

ARCHITECTURE = "voice2face"


@dataclass
class Voice2FaceConfig:
    architecture: str = ARCHITECTURE
    preset: str = "cpu"
    image_size: int = 128  # 4 * 2**len(generator)
    embed_dim: int = 64  # voice embedding (Wen et al.: 64)
    num_identities: int = 1000  # speaker / face classes in training
    trained_steps: int = 0
    audio: AudioConfig = field(default_factory=lambda: AudioConfig(n_fft=640))
    voice: AudioIdentityConfig = field(  # the same network as the cpu preset's E_id^a: a fair comparison
        default_factory=lambda: AudioIdentityConfig(channels=[16, 32, 64, 128], layers=[1, 2, 2, 1])
    )
    generator: list[int] = field(default_factory=lambda: [256, 128, 64, 32, 16])  # channels at 4, 8, 16 ... px
    critic: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])  # D and C trunks, 128 px down

    def __post_init__(self) -> None:
        if self.architecture != ARCHITECTURE:
            raise ConfigError(f"architecture {self.architecture!r} is not {ARCHITECTURE!r}")
        if self.image_size != 4 * 2 ** len(self.generator) or self.image_size != 4 * 2 ** len(self.critic):
            raise ConfigError(f"image_size {self.image_size} must be 4 * 2**len(generator) and 4 * 2**len(critic)")

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": ARCHITECTURE, "format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    def save(self, path: str | Path) -> None:
        save_json(self.to_dict(), path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Voice2FaceConfig:
        data = dict(data)
        kind = data.pop("model_type", ARCHITECTURE)
        if kind != ARCHITECTURE:
            raise ConfigError(f"a {kind!r} model, not a voice2face model")
        version = data.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ConfigError(f"config format_version {version!r} is not supported (reads {FORMAT_VERSION})")
        return _build(cls, data, "config")


def tiny_config() -> Voice2FaceConfig:
    """For tests: 32 px, a few thousand parameters."""
    return Voice2FaceConfig(
        preset="tiny", image_size=32, embed_dim=8, num_identities=4,
        audio=AudioConfig(n_fft=400, n_mels=16, content_window=8, identity_window_s=1.0),
        voice=AudioIdentityConfig(channels=[4, 8], layers=[1, 1], se_reduction=2),
        generator=[16, 8, 8], critic=[8, 8, 16],
    )  # fmt: skip


class DCGANGenerator(nn.Module):
    """(B, embed) -> (B, 3, S, S) in [-1, 1]: transposed convolutions from a 4x4 grid."""

    def __init__(self, embed_dim: int, channels: list[int]):
        super().__init__()
        layers: list[nn.Module] = [nn.ConvTranspose2d(embed_dim, channels[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(channels[0]), nn.ReLU(True)]  # fmt: skip
        for cin, cout in zip(channels, channels[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(channels[-1], 3, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net(e[:, :, None, None])


class Critic(nn.Module):
    """(B, 3, S, S) -> (B, outputs): strided convolutions down to 4x4, then one 4x4 convolution.
    One output: the discriminator; `num_identities` outputs: the face classifier."""

    def __init__(self, channels: list[int], outputs: int):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for cout in channels:
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            cin = cout
        layers.append(nn.Conv2d(cin, outputs, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


class Voice2FaceModel(nn.Module):
    """What the exported weights hold: the voice embedder and the generator."""

    def __init__(self, cfg: Voice2FaceConfig):
        super().__init__()
        self.cfg = cfg
        self.mel = LogMel(cfg.audio)
        self.voice = AudioIdentityEncoder(cfg.voice, cfg.audio.n_mels, cfg.embed_dim)
        self.generator = DCGANGenerator(cfg.embed_dim, cfg.generator)

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.voice(mel), dim=-1)


def load_voice2face(source: WeightsSource) -> Voice2FaceModel:
    try:
        cfg = load_json(Voice2FaceConfig, source.folder / CONFIG_FILE, "config")
    except ConfigError as exc:
        raise WeightsError(str(exc)) from None
    model = Voice2FaceModel(cfg)
    model.load_state_dict(load_state(source.folder / WEIGHTS_FILE, model), strict=True)
    return model.eval()


class Voice2FacePipeline:
    """The baseline behind the same calls `s2tf eval` makes on S2TF; it can only draw faces."""

    can_embed_faces = False  # no face encoder: no voice-to-face retrieval, matching or talk
    precision = "fp32"  # no per-frame networks to run in bf16

    def __init__(self, model: Voice2FaceModel, device: torch.device, source: WeightsSource | None = None):
        self.model = model.to(device).eval()
        self.device = device
        self.source = source
        self.cfg = model.cfg

    @property
    def weights_label(self) -> str:
        return self.source.label if self.source else "in-memory voice2face"

    def voice_identity(self, voice) -> torch.Tensor:
        from .. import audio as audio_io
        from ..pipeline import checked_voice, identity_windows

        wave = audio_io.normalize_loudness(checked_voice(voice, self.cfg.audio))
        with torch.inference_mode():
            mel = self.model.mel(torch.from_numpy(wave).to(self.device))[0]
            emb = torch.cat([self.model.embed(w) for w in identity_windows(mel, self.cfg.audio).split(32)])
        return F.normalize(emb.mean(0), dim=-1)

    def face(self, voice, pose=None, seed: int | None = None, n_samples: int = 1, **_) -> list[np.ndarray]:
        """The generator has no noise input: every sample of one voice is the same face."""
        if pose is not None:
            raise UsageError("the voice2face baseline draws frontal faces only (no --pose)")
        return self.face_from_identity(self.voice_identity(voice), n_samples=n_samples)

    def face_from_identity(self, e: torch.Tensor, pose=None, seed: int | None = None, n_samples: int = 1, **_):
        from ..images import to_uint8

        if pose is not None:
            raise UsageError("the voice2face baseline draws frontal faces only (no --pose)")
        with torch.inference_mode():
            img = self.model.generator(e[None])
        return [to_uint8(img)[0]] * n_samples
