"""The lip-sync expert: its offset protocol on a case with a known answer, training, save/load, CLI."""

import json
from pathlib import Path

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


@pytest.mark.slow
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
    assert row["sync offset 0 % real frames"] in (0.0, 50.0, 100.0)  # 2 clips: the expert judged on real frames


def test_expert_folder_is_checked(tmp_path, prepared_corpus, tiny_weights):
    result = runner.invoke(app, ["eval", str(prepared_corpus), "-w", str(tiny_weights), "--syncnet", str(tmp_path)])
    assert result.exit_code == 2 and "not a sync expert folder" in result.output
    (tmp_path / "config.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a s2tf sync expert"):
        SyncNet.load(tmp_path)


def test_mouth_box_is_what_the_expert_sees():
    """Only the configured box reaches the video stream: a change outside it changes nothing."""
    cfg = SyncNetConfig()
    net = SyncNet(cfg).eval()
    frames = np.zeros((cfg.frames, 128, 128, 3), np.uint8)
    top, bottom, left, right = cfg.mouth_box
    frames[:, int(top * 128) : int(bottom * 128), int(left * 128) : int(right * 128)] = 200
    mouths = net.mouths(frames)
    assert mouths.shape == (cfg.frames, 3, cfg.mouth_height, 2 * cfg.mouth_height)
    assert torch.allclose(mouths, torch.full_like(mouths, 200 / 127.5 - 1), atol=1e-4)
    eyes = frames.copy()
    eyes[:, 30:50] = 255  # above the box
    assert torch.equal(net.mouths(eyes), mouths)


def test_motion_channels_hold_what_moved():
    """The motion half of the input is zero for a still window and, when one frame changes, largest there."""
    net = SyncNet(SyncNetConfig()).eval()
    k, h = net.cfg.frames, net.cfg.mouth_height
    still = torch.rand(1, 1, 3, h, 2 * h).expand(1, k, -1, -1, -1).clone()
    x = net.video_input(still)
    assert x.shape == (1, 2 * 3 * k, h, 2 * h)
    assert torch.equal(x[:, : 3 * k], still.flatten(1, 2)) and x[:, 3 * k :].abs().max() < 1e-6
    moved = still.clone()
    moved[:, 2] += 0.5
    motion = net.video_input(moved)[0, 3 * k :].reshape(k, 3, h, 2 * h).abs().mean(dim=(1, 2, 3))
    assert int(motion.argmax()) == 2 and motion[2] > 3 * motion[0]


def test_old_expert_format_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"format": "s2tf-syncnet/1"}')
    with pytest.raises(ValueError, match="older format .*retrain it"):
        SyncNet.load(tmp_path)


def test_embedded_expert_is_found_by_name_and_loads(prepared_corpus, tmp_path, monkeypatch):
    from s2tf_cli.cli.eval import _expert_folder
    from s2tf_cli.hub import embedded_root

    embedded = embedded_root() / "syncnet-cpu"
    monkeypatch.chdir(tmp_path)  # no folder of that name here: the embedded one
    assert _expert_folder(Path("syncnet-cpu")) == embedded
    net = SyncNet.load(embedded)
    assert not net.training and net.cfg.motion and net.cfg.frames == 5
    (tmp_path / "syncnet-cpu").mkdir()  # a path always wins
    assert _expert_folder(Path("syncnet-cpu")) == Path("syncnet-cpu")
    assert _expert_folder(Path("elsewhere/syncnet-cpu")) == Path("elsewhere/syncnet-cpu")


def test_each_window_is_embedded_once_not_once_per_offset(monkeypatch):
    net = _Oracle(SyncNetConfig())
    frames, wave = _clip(2)
    seen = {"video": 0, "audio": 0}
    for kind in seen:
        embed = getattr(net, f"embed_{kind}")
        monkeypatch.setattr(
            net,
            f"embed_{kind}",
            lambda x, embed=embed, kind=kind: (seen.__setitem__(kind, seen[kind] + len(x)), embed(x))[1],
        )
    best, _, _ = offsets_and_confidence(net, frames, wave, max_shift=6)
    windows = len(frames) - net.cfg.frames + 1
    assert best == 2 and seen == {"video": windows, "audio": windows + 12}
