"""A SyncNet-style lip-sync expert (Chung & Zisserman 2016, as Wav2Lip trains it), learnt on a prepared
corpus's training clips and then frozen: it judges whether a mouth moves with the audio, and at which
audio-video offset it does so best. s2tf never trains against it, so it can score s2tf.

Layout on disk like any weights folder: config.json + model.safetensors.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import AudioConfig

FORMAT = "s2tf-syncnet/2"  # /2: mouth box and motion channels (a /1 expert must be retrained)


@dataclass
class SyncNetConfig:
    frames: int = 5  # video frames per window (0.2 s at 25 fps)
    fps: float = 25.0
    mouth_height: int = 32  # the mouth box, resized to (height, 2 * height)
    mouth_box: tuple[float, float, float, float] = (0.55, 0.95, 0.15, 0.85)  # top, bottom, left, right of the crop
    motion: bool = True  # also feed each frame minus the window's mean: what moves, not who it is
    width: int = 32  # channels of the first conv; doubles per stage
    dim: int = 128  # embedding size
    audio: AudioConfig = dataclasses.field(default_factory=AudioConfig)

    @property
    def mel_frames(self) -> int:
        return round(self.frames / self.fps * self.audio.sample_rate / self.audio.hop_length)


def _stream(cin: int, width: int, dim: int, stages: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = cin
    for i in range(stages):
        w = width * 2**i
        layers += [nn.Conv2d(c, w, 3, stride=2 if i else 1, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                   nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]  # fmt: skip
        c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, dim)]
    return nn.Sequential(*layers)


class SyncNet(nn.Module):
    def __init__(self, cfg: SyncNetConfig):
        super().__init__()
        from ..models.mel import LogMel

        self.cfg = cfg
        self.mel = LogMel(cfg.audio)
        self.video = _stream(3 * cfg.frames * (2 if cfg.motion else 1), cfg.width, cfg.dim, 4)
        self.audio = _stream(1, cfg.width, cfg.dim, 4)

    def mouths(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 face crops -> (T, 3, h, 2h) mouth boxes in [-1, 1]."""
        h = self.cfg.mouth_height
        x = torch.from_numpy(np.ascontiguousarray(frames)).float().permute(0, 3, 1, 2) / 127.5 - 1
        top, bottom, left, right = self.cfg.mouth_box
        rows, cols = x.shape[2], x.shape[3]
        x = x[:, :, int(top * rows) : max(int(bottom * rows), int(top * rows) + 1),
              int(left * cols) : max(int(right * cols), int(left * cols) + 1)]  # fmt: skip
        return F.interpolate(x, size=(h, 2 * h), mode="bilinear", align_corners=False, antialias=True)

    def embed_video(self, mouths: torch.Tensor) -> torch.Tensor:
        """(B, frames, 3, h, w) -> (B, dim), unit length."""
        return F.normalize(self.video(self.video_input(mouths)), dim=-1)

    def video_input(self, mouths: torch.Tensor) -> torch.Tensor:
        """(B, frames, 3, h, w) -> (B, channels, h, w): the frames, then (with `motion`) each frame minus
        the window's mean frame."""
        if self.cfg.motion:
            mouths = torch.cat([mouths, mouths - mouths.mean(1, keepdim=True)], dim=1)
        return mouths.flatten(1, 2)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, mel_frames) -> (B, dim), unit length."""
        return F.normalize(self.audio(mel[:, None]), dim=-1)

    def save(self, folder: Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(
            json.dumps({"model_type": "syncnet", "format": FORMAT, **dataclasses.asdict(self.cfg)}, indent=2)
        )
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors"))
        return folder

    @classmethod
    def load(cls, folder: Path) -> SyncNet:
        from safetensors.torch import load_file

        folder = Path(folder)
        raw = json.loads((folder / "config.json").read_text())
        raw.pop("model_type", None)
        made = raw.pop("format", None)
        if isinstance(made, str) and made.startswith("s2tf-syncnet/") and made != FORMAT:
            raise ValueError(f"{folder}: a sync expert of an older format ({made}); retrain it with `s2tf syncnet`")
        if made != FORMAT:
            raise ValueError(f"{folder}: not a s2tf sync expert (config.json format is not {FORMAT})")
        audio = AudioConfig(**raw.pop("audio"))
        if "mouth_box" in raw:
            raw["mouth_box"] = tuple(raw["mouth_box"])
        net = cls(SyncNetConfig(audio=audio, **raw))
        net.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
        return net.eval()


def clip_mel(net: SyncNet, wave: np.ndarray) -> torch.Tensor:
    from ..audio import normalize_loudness

    with torch.no_grad():
        return net.mel(torch.from_numpy(normalize_loudness(np.asarray(wave, np.float32))))[0]


def audio_at(cfg: SyncNetConfig, mel: torch.Tensor, frame: int) -> torch.Tensor:
    """(n_mels, mel_frames) audio of the window starting at video frame `frame`; silence outside the clip."""
    start = round(frame * cfg.mel_frames / cfg.frames)
    out = torch.full((mel.shape[0], cfg.mel_frames), float(mel.min()))
    lo, hi = max(start, 0), min(start + cfg.mel_frames, mel.shape[1])
    if hi > lo:
        out[:, lo - start : hi - start] = mel[:, lo:hi]
    return out


def offsets_and_confidence(
    net: SyncNet, frames: np.ndarray, wave: np.ndarray, max_shift: int = 10
) -> tuple[int, float, dict]:
    """SyncNet's protocol: mean embedding distance at each offset in [-max_shift, max_shift] frames;
    the best offset minimises it, confidence = median distance - minimum distance."""
    net.eval()
    mouths = net.mouths(frames)
    mel = clip_mel(net, wave)
    starts = list(range(0, len(frames) - net.cfg.frames + 1))
    if not starts:
        raise ValueError(f"clip of {len(frames)} frames is shorter than the {net.cfg.frames}-frame window")
    dists = {}
    with torch.no_grad():  # each video window and each audio window embedded once, not once per offset
        video = net.embed_video(torch.stack([mouths[s : s + net.cfg.frames] for s in starts]))
        first = starts[0] - max_shift
        heard = range(first, starts[-1] + max_shift + 1)
        audio = net.embed_audio(torch.stack([audio_at(net.cfg, mel, s) for s in heard]))
        for off in range(-max_shift, max_shift + 1):
            shifted = audio[[s + off - first for s in starts]]
            dists[off] = float((video - shifted).norm(dim=-1).mean())
    best = min(dists, key=dists.get)
    return best, float(np.median(list(dists.values())) - dists[best]), dists


def train_syncnet(corpus_dir: Path, out: Path, steps: int = 2000, batch: int = 32, lr: float = 1e-3, seed: int = 0,
                  cfg: SyncNetConfig | None = None, progress=None) -> dict:  # fmt: skip
    """InfoNCE over in-batch windows: each video window's own audio against other clips' audio and the
    same clip's audio shifted by 3-12 frames (the hard negatives a sync judge must reject)."""
    from ..training.corpus import Corpus

    cfg = cfg or SyncNetConfig()
    torch.manual_seed(seed)
    net = SyncNet(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    corpus = Corpus(corpus_dir, "train")
    rng = np.random.default_rng(seed)
    k = cfg.frames
    mels: dict[Path, torch.Tensor] = {}  # each clip's log-mel, computed once (it was most of a step's time)
    log = []
    for step in range(steps):
        vs, pos, neg = [], [], []
        for _ in range(batch):
            clip = corpus.clips[int(rng.integers(len(corpus.clips)))]
            shard = corpus.shard(clip)
            n = len(shard)
            if n < k + 13:
                continue
            s = int(rng.integers(0, n - k + 1))
            shift = int(rng.integers(3, 13)) * (1 if rng.random() < 0.5 else -1)
            if not 0 <= s + shift <= n - k:
                shift = -shift
            frames = np.stack([shard.frame(i) for i in range(s, s + k)])
            if clip.path not in mels:
                mels[clip.path] = clip_mel(net, shard.audio)
            mel = mels[clip.path]
            vs.append(net.mouths(frames))
            pos.append(audio_at(cfg, mel, s))
            neg.append(audio_at(cfg, mel, s + shift))
        if len(vs) < 2:
            raise ValueError(f"{corpus_dir}: clips are too short to train a sync expert")
        net.train()
        ev = net.embed_video(torch.stack(vs))
        ea = net.embed_audio(torch.stack(pos + neg))
        logits = ev @ ea.T / 0.1
        loss = F.cross_entropy(logits, torch.arange(len(vs)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        acc = float((logits.argmax(1) == torch.arange(len(vs))).float().mean())
        log.append({"step": step + 1, "loss": float(loss.detach()), "acc": acc})
        if progress:
            progress(1)
    net.eval()
    net.save(out)
    (Path(out) / "train_log.json").write_text(json.dumps(log))
    return {"steps": steps, "loss": float(np.mean([r["loss"] for r in log[-20:]])),
            "acc": float(np.mean([r["acc"] for r in log[-20:]]))}  # fmt: skip
