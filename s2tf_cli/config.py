"""Model configuration: typed dataclasses saved as config.json beside the weights.

Presets are data (`PRESETS`), not code forks. Loading is strict: an unknown or missing key is an error,
so a config written by a different version of the code cannot be silently misread. The one exception is
`ADDED_KEYS`: settings added later whose default reproduces what older folders did, so those still load.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

# What a weights folder holds (config.json's "model_type"): "s2tf", "voice2face" or "syncnet"; see `loader`.
MODEL_TYPE = "s2tf"

# Bumped when the meaning of a weights folder changes; a folder with another major version is refused.
FORMAT_VERSION = 1

# Keys a format-1 folder may lack: added later, their default is the behaviour before they existed.
ADDED_KEYS = frozenset(
    {
        "centroid_prior",
        "novel_id",
        "novel_angle",
        "backbone",
        "ge2e_mels",
        "ge2e_hidden",
        "ge2e_layers",
        "ge2e_partial",
        "head_hidden",
        "train_backbone",
        "kind",
        "sample_neighbours",
        "pose",
        "pose_cycle",
        "pose_center",
        "pose_scale",
        "mouth",
        "pose_alone",
        "mouth_center",
        "mouth_scale",
        "pose_render",
        "voice_shift",
        "pose_reader",
    }
)


class ConfigError(ValueError):
    """A config.json that this version of the code cannot read."""


@dataclass
class AudioConfig:
    sample_rate: int = 16000  # Hz; every input is resampled to this, mono
    n_fft: int = 1280  # FFT window in samples (paper: 1280)
    hop_length: int = 160  # samples per mel frame: 100 mel frames/s, 4 per video frame at 25 fps
    n_mels: int = 80  # mel bands
    f_min: float = 55.0  # lowest mel band edge, Hz
    f_max: float = 7600.0  # highest mel band edge, Hz
    identity_window_s: float = 3.2  # speech per identity window (paper: 3.2 s); windows are averaged
    min_duration_s: float = 0.5  # shorter clips carry too little identity to be used
    content_window: int = 20  # mel frames seen by the content encoder per video frame (0.2 s)


@dataclass
class AudioIdentityConfig:
    """E_id^a: ResNetSE34-style residual squeeze-excitation network with attentive statistics pooling,
    trained here ("resnet"), or a pretrained GE2E speaker LSTM with a trained head ("ge2e")."""

    backbone: str = "resnet"  # "resnet" or "ge2e" (models/speaker_ge2e.py)
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])  # resnet: per stage
    layers: list[int] = field(default_factory=lambda: [3, 4, 6, 3])  # resnet: residual blocks per stage
    se_reduction: int = 8  # resnet: squeeze-excitation bottleneck ratio
    ge2e_mels: int = 40  # ge2e: its mel bands (resemblyzer's: 40)
    ge2e_hidden: int = 256  # ge2e: LSTM width = d-vector length (resemblyzer's: 256)
    ge2e_layers: int = 3  # ge2e: LSTM layers (resemblyzer's: 3)
    ge2e_partial: int = 160  # ge2e: mel frames per partial utterance (1.6 s), one every half of that
    head_hidden: int = 512  # ge2e: width of the trained MLP from the d-vector into the identity space
    train_backbone: bool = False  # ge2e: False keeps the pretrained LSTM as it is in every stage

    def __post_init__(self) -> None:
        if self.backbone not in ("resnet", "ge2e"):
            raise ConfigError(f"audio_identity.backbone must be 'resnet' or 'ge2e', not {self.backbone!r}")


@dataclass
class AudioContentConfig:
    """E_s^a: small conv net over the mel window centred on one video frame."""

    channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512])


@dataclass
class VisualIdentityConfig:
    """E_id^v: ResNet ("basic" blocks) or ResNeXt ("bottleneck" blocks with groups)."""

    block: str = "bottleneck"  # "basic" or "bottleneck"
    layers: list[int] = field(default_factory=lambda: [3, 4, 6, 3])
    channels: list[int] = field(default_factory=lambda: [256, 512, 1024, 2048])  # stage outputs
    groups: int = 32  # grouped 3x3 convolutions (ResNeXt cardinality); 1 for plain ResNet
    width_per_group: int = 4  # bottleneck width per group for the first stage (ResNeXt 32x4d)
    stem: int = 64  # stem channels


@dataclass
class VisualIrrelevantConfig:
    """E_ir^v: plain strided conv encoder (after Zhou et al. 2019)."""

    channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 512])


@dataclass
class GeneratorConfig:
    """G: StyleGAN2-style, one block per entry of `channels`, the first at image_size / 2**(blocks-1)."""

    channels: list[int] = field(default_factory=lambda: [512, 512, 512, 256, 128, 64])
    style_dim: int = 512  # w: output of the mapping MLP over cat(f_id, f_ir)
    mapping_layers: int = 4  # depth of the mapping MLP
    noise: bool = True  # per-pixel noise inputs; fixed (deterministic) unless a seed asks otherwise
    input: str = "const"  # first block's input: "const" (StyleGAN2's learned constant) or "style" (a linear
    # map of w to the base grid, added to the constant; converges much faster on a small training budget)


@dataclass
class DiscriminatorConfig:
    """D, used in training only: a multi-scale patch discriminator (pix2pixHD, "patch") for the paper's
    stages, or a residual whole-image one (StyleGAN2's, "residual") for the GAN stage on photos."""

    scales: int = 3  # patch: image scales judged
    channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512])  # per downsampling step
    kind: str = "patch"  # "patch" or "residual"

    def __post_init__(self) -> None:
        if self.kind not in ("patch", "residual"):
            raise ConfigError(f"discriminator.kind must be 'patch' or 'residual', not {self.kind!r}")


@dataclass
class ModelConfig:
    preset: str = "paper"  # name of the preset this config came from (informational)
    image_size: int = 224  # generated face size in pixels (square)
    id_dim: int = 2048  # length of f_id (identity space)
    ir_dim: int = 512  # length of f_ir and f_s (identity-irrelevant space and its content subspace)
    num_identities: int = 5994  # rows of the shared centroid matrix W (training identities)
    arcface_scale: float = 30.0  # s in Eq. 2
    arcface_margin: float = 0.3  # m in Eq. 2
    sample_jitter: float = 0.15  # spread of f_id around the voice's estimate when sampling with a seed
    # Sampling toward real people (0: off, the jitter above): a seeded sample moves the voice's f_id part of
    # the way (slerp 0.3-0.6) toward one of the `sample_neighbours` centroids of W nearest to it. The nearest
    # people to a voice share its gender and age far more often than a random direction does, and the
    # points between real people are where the GAN stage taught G to draw faces.
    sample_neighbours: int = 0
    # Temperature of the centroid prior that `face`/`talk` draw a voice's f_id through (0: off): the
    # softmax(cos / T)-weighted mean of the shared centroids W, i.e. the voice's estimate pulled onto the
    # identities G was trained to draw. Retrieval always uses the raw f_id.
    centroid_prior: float = 0.0
    trained_steps: int = 0  # training steps behind these weights, summed over continued runs (informational)
    # Where a GAN stage taught pose (data/pose_labels.py): f_ir^v's first entries are yaw, pitch and roll,
    # each (measure - center) / scale in the landmark measures of the pose judge's definition. Empty: no
    # pose entries (f_ir carries pose, if at all, where the encoder put it).
    pose_center: list[float] = field(default_factory=list)
    pose_scale: list[float] = field(default_factory=list)
    # Where a GAN stage also taught the mouth: the entry after the pose entries is how open the mouth is,
    # (opening - center) / scale, and it is the voice's to set (`S2TFModel.speak`). 0: no mouth entry.
    mouth_center: float = 0.0
    mouth_scale: float = 0.0
    # Per pose entry, the share of an offset that G draws as E_ir^v reads it back (export measures it,
    # training/pose_render.py): `talk`'s head motion asks for 1/share so the head turns as far as stated.
    # Empty: taken as 1.
    pose_render: list[float] = field(default_factory=list)
    # Mean unit f_id^v of the voice stage's training people's photos minus the mean unit f_id^a of their
    # voices (training/voice_stage.py): the voice head's outputs share a direction no photo has, so G, which
    # learnt from photos, draws a voice's f_id after this is added. Empty: nothing added. Retrieval uses f_id^a.
    voice_shift: list[float] = field(default_factory=list)
    # Widths of a head-pose reader of its own (models/pose_reader.py) that reads the pose entries of a reference
    # face or pose video in place of E_ir^v (the pose-reader stage trains it). Empty: E_ir^v reads them.
    pose_reader: list[int] = field(default_factory=list)
    audio: AudioConfig = field(default_factory=AudioConfig)
    audio_identity: AudioIdentityConfig = field(default_factory=AudioIdentityConfig)
    audio_content: AudioContentConfig = field(default_factory=AudioContentConfig)
    visual_identity: VisualIdentityConfig = field(default_factory=VisualIdentityConfig)
    visual_irrelevant: VisualIrrelevantConfig = field(default_factory=VisualIrrelevantConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        blocks = len(self.generator.channels)
        if self.image_size % 2 ** (blocks - 1):
            raise ConfigError(
                f"image_size {self.image_size} must be divisible by 2**{blocks - 1} for {blocks} generator blocks"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": MODEL_TYPE, "format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    def save(self, path: str | Path) -> None:
        save_json(self.to_dict(), path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        kind = data.pop("model_type", MODEL_TYPE)  # folders written before model_type are S2TF models
        if kind != MODEL_TYPE:
            raise ConfigError(f"a {kind!r} model, not an S2TF model (s2tf_cli.load() loads every kind)")
        version = data.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ConfigError(
                f"config format_version {version!r} is not supported by this s2tf (reads {FORMAT_VERSION})"
            )
        return _build(cls, data, "config")

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        return load_json(cls, path, "config")


def load_json(cls: type, path: str | Path, what: str, overrides: dict[str, Any] | None = None) -> Any:
    """`cls.from_dict` of a JSON file (with top-level `overrides` applied first), every failure a
    ConfigError that names the file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} must be a JSON object")
    try:
        return cls.from_dict({**data, **(overrides or {})})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save_json(data: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass `cls` from `data`, refusing unknown and missing keys and wrong types."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(unknown)}")
    missing = sorted(names - set(data) - ADDED_KEYS)
    if missing:
        raise ConfigError(f"missing key(s) in {where}: {', '.join(missing)}")
    kwargs = {}
    for name in names:
        if name not in data:  # one of ADDED_KEYS: its default
            continue
        value, hint = data[name], hints[name]
        if dataclasses.is_dataclass(hint):
            if isinstance(value, hint):  # already built (e.g. a preset)
                kwargs[name] = value
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{name} must be an object")
            value = _build(hint, value, f"{where}.{name}")
        elif not _type_ok(value, hint):
            raise ConfigError(f"{where}.{name} has the wrong type: {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def _type_ok(value: Any, hint: Any) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if getattr(hint, "__origin__", None) is list:
        (item,) = hint.__args__
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    return True


def _cpu_preset() -> ModelConfig:
    return ModelConfig(
        preset="cpu",
        image_size=128,
        id_dim=256,
        ir_dim=128,
        num_identities=1000,
        audio=AudioConfig(n_fft=640),
        audio_identity=AudioIdentityConfig(channels=[16, 32, 64, 128], layers=[1, 2, 2, 1]),
        audio_content=AudioContentConfig(channels=[32, 64, 128, 128]),
        visual_identity=VisualIdentityConfig(
            block="basic", layers=[1, 1, 1, 1], channels=[32, 64, 128, 256], groups=1, width_per_group=64, stem=32
        ),
        visual_irrelevant=VisualIrrelevantConfig(channels=[32, 64, 128, 128, 128]),
        generator=GeneratorConfig(channels=[256, 256, 128, 64, 32, 16], style_dim=256, mapping_layers=3),
        discriminator=DiscriminatorConfig(scales=2, channels=[32, 64, 128, 128]),
    )


def _tiny_preset() -> ModelConfig:
    """For tests: every module present, a few thousand parameters each."""
    return ModelConfig(
        preset="tiny",
        image_size=32,
        id_dim=16,
        ir_dim=8,
        num_identities=4,
        audio=AudioConfig(n_fft=400, n_mels=16, content_window=8, identity_window_s=1.0),
        audio_identity=AudioIdentityConfig(channels=[4, 8], layers=[1, 1], se_reduction=2),
        audio_content=AudioContentConfig(channels=[4, 8]),
        visual_identity=VisualIdentityConfig(
            block="basic", layers=[1, 1], channels=[8, 16], groups=1, width_per_group=8, stem=8
        ),
        visual_irrelevant=VisualIrrelevantConfig(channels=[8, 16]),
        generator=GeneratorConfig(channels=[16, 16, 8, 8], style_dim=16, mapping_layers=2),
        discriminator=DiscriminatorConfig(scales=2, channels=[8, 16]),
    )


def _cpu_ge2e_preset() -> ModelConfig:
    """The CPU preset with E_id^a on the pretrained GE2E speaker encoder (real voices, not espeak's)."""
    cfg = _cpu_preset()
    return dataclasses.replace(cfg, preset="cpu-ge2e", audio_identity=AudioIdentityConfig(backbone="ge2e"))


def _cpu_real_preset() -> ModelConfig:
    """For real people on 2 cores: G at 64 px first (a GAN learns there in the steps a CPU gives) with its
    base grid from w (pose and layout reach the first layer, not only the modulations), a 128-d identity
    space, a narrow f_ir (32: pose, expression, light; too narrow to carry a second identity past f_id),
    GE2E under E_id^a and a residual D."""
    cfg = _cpu_preset()
    return dataclasses.replace(
        cfg, preset="cpu-real", image_size=64, id_dim=128, ir_dim=32, sample_neighbours=16,
        audio_identity=AudioIdentityConfig(backbone="ge2e"),
        visual_identity=VisualIdentityConfig(block="basic", layers=[1, 2, 2, 1], channels=[32, 64, 128, 256],
                                             groups=1, width_per_group=64, stem=32),
        visual_irrelevant=VisualIrrelevantConfig(channels=[32, 64, 128, 128]),
        generator=GeneratorConfig(channels=[256, 256, 128, 64, 32], style_dim=256, mapping_layers=3, input="style"),
        discriminator=DiscriminatorConfig(channels=[32, 64, 128, 256], kind="residual"),
    )  # fmt: skip


PRESETS = {
    "paper": ModelConfig,
    "cpu": _cpu_preset,
    "cpu-ge2e": _cpu_ge2e_preset,
    "cpu-real": _cpu_real_preset,
    "tiny": _tiny_preset,
}


def preset(name: str) -> ModelConfig:
    """A fresh config for a named preset."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
