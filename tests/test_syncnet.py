"""The lip-sync expert: its offset protocol on a case with a known answer, training, save/load, CLI."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from s2tf_cli.cli import app
from s2tf_cli.evaluation.syncnet import SyncNet, SyncNetConfig, offsets_and_confidence

runner = CliRunner()


class _Oracle(SyncNet):
    """Embeddings that are the loudness / mouth-brightness profile of the window: in sync, they agree."""

    def embed_video(self, mouths):
        x = mouths.mean(dim=(2, 3, 4))  # (B, frames)
        return F.normalize(x - x.mean(1, keepdim=True) + 1e-6, dim=-1)

    def embed_audio(self, mel):
        per = mel.shape[-1] // self.cfg.frames
        x = mel.exp().mean(1).reshape(len(mel), self.cfg.frames, per).mean(-1)
        return F.normalize(x - x.mean(1, keepdim=True) + 1e-6, dim=-1)


def _clip(lag_frames: int):
    """Mouth brightness follows loudness per frame; the audio is delayed by `lag_frames`."""
    rng = np.random.default_rng(0)
    n = 60
    level = rng.uniform(0.05, 1.0, n)
    frames = np.zeros((n, 32, 32, 3), np.uint8)
    frames[:, 16:] = (level * 250)[:, None, None, None].astype(np.uint8)
    t = np.arange(640)
    tone = np.sin(2 * np.pi * 300 * t / 16000)
    wave = np.concatenate([np.zeros(640 * lag_frames)] + [lv * tone for lv in level])[: n * 640]
    return frames, wave.astype(np.float32)


@pytest.mark.parametrize("lag", [0, 3])
def test_offset_protocol_finds_the_known_lag(lag):
    net = _Oracle(SyncNetConfig())
    frames, wave = _clip(lag)
    best, conf, dists = offsets_and_confidence(net, frames, wave, max_shift=6)
    assert best == lag and conf > 0
    assert len(dists) == 13 and dists[lag] == min(dists.values())


def test_cli_trains_saves_and_eval_uses_the_expert(prepared_corpus, tiny_weights, tmp_path):
    out = tmp_path / "sync"
    result = runner.invoke(app, ["syncnet", str(prepared_corpus), "-o", str(out), "--steps", "3", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "train_log.json"}
    assert len(json.loads((out / "train_log.json").read_text())) == 3
    net = SyncNet.load(out)
    assert not net.training
    again = SyncNet.load(out)
    mel = torch.randn(2, 80, net.cfg.mel_frames)
    assert torch.equal(net.embed_audio(mel), again.embed_audio(mel)), "save -> load -> same expert"
    result = runner.invoke(app, ["eval", str(prepared_corpus), "-w", str(tiny_weights), "--split", "train",
                                 "--sync-clips", "2", "--syncnet", str(out), "--json", str(tmp_path / "e.json")])  # fmt: skip
    assert result.exit_code == 0, result.output
    row = next(iter(json.loads((tmp_path / "e.json").read_text()).values()))
    assert len(row["sync offsets"]) == 2 and all(-10 <= o <= 10 for o in row["sync offsets"])
    assert 0 <= row["sync offset 0 %"] <= 100 and row["sync conf"] >= 0


def test_expert_folder_is_checked(tmp_path, prepared_corpus, tiny_weights):
    result = runner.invoke(app, ["eval", str(prepared_corpus), "-w", str(tiny_weights), "--syncnet", str(tmp_path)])
    assert result.exit_code == 2 and "not a sync expert folder" in result.output
    (tmp_path / "config.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a s2tf sync expert"):
        SyncNet.load(tmp_path)
