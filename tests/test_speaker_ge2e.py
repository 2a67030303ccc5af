"""E_id^a on a pretrained GE2E speaker encoder: the mel-band map, the level, the weights' import from
resemblyzer's layout, a frozen backbone under a trained head, and a continued run that swaps E_id^a."""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import speechlike
from safetensors.torch import load_file
from typer.testing import CliRunner

from s2tf_cli.cli import app
from s2tf_cli.config import AudioConfig, AudioIdentityConfig, ConfigError, ModelConfig, preset
from s2tf_cli.models.mel import LogMel
from s2tf_cli.models.speaker_ge2e import GE2E, GE2EIdentityEncoder, band_map
from s2tf_cli.training.config import TrainConfig
from s2tf_cli.training.trainer import train

runner = CliRunner()
SMALL = AudioIdentityConfig(backbone="ge2e", ge2e_mels=8, ge2e_hidden=8, ge2e_layers=1, ge2e_partial=20, head_hidden=8)


def _tiny_ge2e() -> ModelConfig:
    return dataclasses.replace(preset("tiny"), audio_identity=SMALL)


def _resemblyzer_checkpoint(path, cfg: AudioIdentityConfig = SMALL, seed: int = 0) -> dict:
    """A file in resemblyzer's layout: its VoiceEncoder state (with GE2E's loss scalars) under model_state."""
    torch.manual_seed(seed)
    state = GE2E(cfg.ge2e_mels, cfg.ge2e_hidden, cfg.ge2e_layers).state_dict()
    torch.save({"step": 7, "model_state": {**state, "similarity_weight": torch.tensor([10.0]),
                                           "similarity_bias": torch.tensor([-5.0])}}, path)  # fmt: skip
    return state


def test_band_map_turns_the_models_mels_into_ge2e_bands():
    import librosa

    audio = AudioConfig(n_fft=640)
    wave = speechlike(2.0, f0=130, seed=4)
    ours = LogMel(audio)(torch.from_numpy(wave))[0].exp().numpy()  # (80, T)
    theirs = librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=640, hop_length=160, n_mels=40, center=True)
    mapped = band_map(audio, 40) @ ours
    t = min(mapped.shape[1], theirs.shape[1])
    mapped, theirs = mapped[:, :t], theirs[:, :t]
    assert np.linalg.norm(mapped - theirs) / np.linalg.norm(theirs) < 0.2
    loud = theirs.mean(1) > 1e-3 * theirs.mean(1).max()
    assert np.corrcoef(np.log(np.clip(mapped[loud], 1e-8, None)).ravel(), np.log(theirs[loud]).ravel())[0, 1] > 0.9


def test_band_map_comes_from_the_cache_once_computed(tmp_path, monkeypatch):
    """Loading a GE2E model must not import librosa on a warm cache (it cost 1.6 s and ~120 MB of every
    cold `s2tf face`): both filterbanks are cached like the model's own, and the map stays exact."""
    import librosa

    monkeypatch.setenv("S2TF_CACHE", str(tmp_path))
    audio = AudioConfig(n_fft=640)
    ours = librosa.filters.mel(sr=16000, n_fft=640, n_mels=audio.n_mels, fmin=audio.f_min, fmax=audio.f_max)
    theirs = librosa.filters.mel(sr=16000, n_fft=640, n_mels=40)
    expected = (theirs @ np.linalg.pinv(ours)).astype(np.float32)
    assert np.array_equal(band_map(audio, 40), expected)
    assert len(list((tmp_path / "mel").glob("*.npy"))) == 2
    monkeypatch.setattr(librosa.filters, "mel", lambda **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    assert np.array_equal(band_map(audio, 40), expected)


def test_ge2e_encoder_ignores_gain_and_takes_short_clips():
    torch.manual_seed(0)
    audio = preset("tiny").audio
    enc = GE2EIdentityEncoder(SMALL, audio, id_dim=16).eval()
    mel = LogMel(audio)
    wave = torch.from_numpy(speechlike(1.2, f0=150, seed=5))
    with torch.no_grad():
        a, b = enc(mel(wave[None])), enc(mel(0.1 * wave[None]))
        short = enc(mel(wave[None, :1600]))  # 0.1 s: fewer frames than one partial
        parts = enc.ge2e_input(mel(torch.stack([wave, wave.flip(0)])))
    assert a.shape == (1, 16) and short.shape == (1, 16) and torch.isfinite(short).all()
    assert torch.allclose(a, b, atol=1e-3), "E_id^a must not hear the recording level"  # but its noise floor
    frames = mel(wave[None]).shape[-1]
    assert parts.shape == (2 * ((frames - 20) // 10 + 1), 20, 8)
    assert torch.allclose(parts.mean(dim=(1, 2)).view(2, -1).mean(1), torch.full((2,), 0.0091), rtol=0.3)
    with pytest.raises(ValueError, match="16 kHz audio and a 10 ms hop"):
        GE2EIdentityEncoder(SMALL, dataclasses.replace(audio, hop_length=320), id_dim=16)
    with pytest.raises(ConfigError, match="backbone must be 'resnet' or 'ge2e', not 'lstm'"):
        ModelConfig.from_dict(
            {**preset("tiny").to_dict(), "audio_identity": {**dataclasses.asdict(SMALL), "backbone": "lstm"}}
        )


def test_resemblyzer_weights_import_as_safetensors(tmp_path):
    state = _resemblyzer_checkpoint(tmp_path / "pretrained.pt")
    out = tmp_path / "ge2e.safetensors"
    result = runner.invoke(app, ["data", "ge2e", str(out), "--source", str(tmp_path / "pretrained.pt")])
    assert result.exit_code == 0, result.output
    assert "tensors=6 mels=8 hidden=8 layers=1" in result.output
    got = load_file(str(out))
    assert got.keys() == state.keys() and all(torch.equal(got[k], v) for k, v in state.items())

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for source, message in ((tmp_path / "junk.pt", "junk.pt: not a resemblyzer checkpoint"),
                            (tmp_path / "none.pt", "none.pt: no such file")):  # fmt: skip
        result = runner.invoke(app, ["data", "ge2e", str(tmp_path / "x.safetensors"), "--source", str(source)])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
        assert not (tmp_path / "x.safetensors").exists()
    result = runner.invoke(app, ["data", "ge2e", str(tmp_path / "x.pt"), "--source", str(tmp_path / "pretrained.pt")])
    assert result.exit_code == 2 and "must be a .safetensors file" in result.output


def test_frozen_ge2e_under_a_trained_head_from_continued_weights(prepared_corpus, tmp_path):
    """A ResNet-E_id^a model continued into a GE2E one: `reinit` lets E_id^a differ, the backbone comes
    from the imported file and stays as it is through stages 2 and 3, the head and G train, and the
    exported folder draws a face."""
    from s2tf_cli.hub import load_model, resolve
    from s2tf_cli.pipeline import S2TF
    from s2tf_cli.training.export import export

    first = TrainConfig(corpus=str(prepared_corpus), model=preset("tiny"), batch_size=3, sample_every=0)
    first.steps.visual, first.steps.sync, first.steps.finetune = 1, 0, 0
    train(first, tmp_path / "first", cpu=True)
    start = load_file(str(export(tmp_path / "first", tmp_path / "w0") / "model.safetensors"))

    _resemblyzer_checkpoint(tmp_path / "pretrained.pt", seed=3)
    assert runner.invoke(app, ["data", "ge2e", str(tmp_path / "ge2e.safetensors"), "--source",
                               str(tmp_path / "pretrained.pt")]).exit_code == 0  # fmt: skip
    backbone = load_file(str(tmp_path / "ge2e.safetensors"))
    cfg = TrainConfig(corpus=str(prepared_corpus), model=_tiny_ge2e(), batch_size=3, sample_every=0,
                      init=str(tmp_path / "w0"), reinit=["audio_identity"],
                      audio_identity_init=str(tmp_path / "ge2e.safetensors"), content_negatives=2,
                      frozen=["visual_identity", "visual_irrelevant", "centroids", "audio_content"])  # fmt: skip
    cfg.steps.visual, cfg.steps.sync, cfg.steps.finetune = 0, 2, 2
    recipe = tmp_path / "recipe.json"
    cfg.save(recipe)
    assert TrainConfig.load(recipe) == cfg
    train(cfg, tmp_path / "run", cpu=True)
    out = export(tmp_path / "run", tmp_path / "w1")
    after = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(after[f"audio_identity.backbone.{k}"], v) for k, v in backbone.items())
    from s2tf_cli.training.stages import TrainingModule

    torch.manual_seed(cfg.seed)
    fresh = TrainingModule(cfg, None).model.state_dict()
    head = [k for k in after if k.startswith("audio_identity.head.")]
    assert head and not any(torch.equal(after[k], fresh[k]) for k in head), "the head trains"
    assert all(torch.equal(after[k], start[k]) for k in start if k.startswith(("visual_identity.", "audio_content.")))
    gen = [k for k in start if k.startswith("generator.")]
    assert not all(torch.equal(after[k], start[k]) for k in gen), "stage 3 trains G"
    assert load_model(resolve(str(out))).cfg.audio_identity.backbone == "ge2e"
    card = (out / "README.md").read_text()
    assert "resemblyzer's pretrained GE2E speaker encoder (Resemble AI, Apache-2.0" in card
    assert "- E_id^a's GE2E backbone from `ge2e.safetensors`" in card
    import soundfile as sf

    sf.write(tmp_path / "v.wav", speechlike(1.5, f0=120, seed=8), 16000)
    face = S2TF.from_pretrained(out, device="cpu").face(str(tmp_path / "v.wav"))[0]
    assert face.shape == (32, 32, 3) and face.dtype == np.uint8

    wrong = dataclasses.replace(cfg, audio_identity_init=str(tmp_path / "w0" / "model.safetensors"))
    with pytest.raises(ValueError, match="model.safetensors: not a GE2E backbone of this config"):
        train(wrong, tmp_path / "wrong", cpu=True)
    with pytest.raises(ConfigError, match="'audio_identity_init' needs model.audio_identity.backbone 'ge2e'"):
        TrainConfig.from_dict({"model": {"preset": "tiny"}, "audio_identity_init": "x.safetensors"})
