"""The diffusers-style contract for every module (tiny config, shape, determinism, save -> reload),
plus maths checks on the mel frontend, modulated convolution and ArcFace centroids."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from s2tf_cli.config import preset
from s2tf_cli.models.audio_content import AudioContentEncoder
from s2tf_cli.models.audio_identity import AudioIdentityEncoder
from s2tf_cli.models.centroids import IdentityCentroids
from s2tf_cli.models.discriminator import MultiScaleDiscriminator
from s2tf_cli.models.generator import ModulatedConv2d, StyleGenerator
from s2tf_cli.models.mel import LogMel
from s2tf_cli.models.s2tf import S2TFModel
from s2tf_cli.models.visual_identity import VisualIdentityEncoder
from s2tf_cli.models.visual_irrelevant import VisualIrrelevantEncoder

CFG = preset("tiny")
B = 3


def _cases():
    c = CFG
    a = c.audio
    img = lambda: torch.randn(B, 3, c.image_size, c.image_size)  # noqa: E731
    return {
        "audio_identity": (
            lambda: AudioIdentityEncoder(c.audio_identity, a.n_mels, c.id_dim),
            lambda: torch.randn(B, a.n_mels, 90),
            (B, c.id_dim),
        ),
        "audio_content": (
            lambda: AudioContentEncoder(c.audio_content, a.n_mels, a.content_window, c.ir_dim),
            lambda: torch.randn(B, a.n_mels, a.content_window),
            (B, c.ir_dim),
        ),
        "visual_identity": (lambda: VisualIdentityEncoder(c.visual_identity, c.id_dim), img, (B, c.id_dim)),
        "visual_irrelevant": (lambda: VisualIrrelevantEncoder(c.visual_irrelevant, c.ir_dim), img, (B, c.ir_dim)),
        "generator": (
            lambda: StyleGenerator(c.generator, c.id_dim + c.ir_dim, c.image_size),
            lambda: torch.randn(B, c.id_dim + c.ir_dim),
            (B, 3, c.image_size, c.image_size),
        ),
    }


def _run(name, module, x):
    if name == "generator":
        return module(x, module.make_noise(0))
    return module(x)


@pytest.mark.parametrize("name", list(_cases()))
def test_module_contract(tmp_path, name):
    make, inputs, shape = _cases()[name]
    torch.manual_seed(0)
    module = make().eval()
    x = inputs()
    with torch.no_grad():
        out = _run(name, module, x)
        again = _run(name, module, x)
    assert tuple(out.shape) == shape
    assert torch.isfinite(out).all()
    assert torch.equal(out, again), "eval mode must be deterministic"
    save_file(module.state_dict(), str(tmp_path / "m.safetensors"))
    torch.manual_seed(1)
    fresh = make().eval()
    with torch.no_grad():
        assert not torch.allclose(_run(name, fresh, x), out), "a different init should differ"
    fresh.load_state_dict(load_file(str(tmp_path / "m.safetensors")), strict=True)
    with torch.no_grad():
        assert torch.equal(_run(name, fresh, x), out)


def test_batch_items_are_independent():
    torch.manual_seed(0)
    enc = AudioIdentityEncoder(CFG.audio_identity, CFG.audio.n_mels, CFG.id_dim).eval()
    x = torch.randn(4, CFG.audio.n_mels, 50)
    with torch.no_grad():
        full = enc(x)
        single = enc(x[2:3])
    torch.testing.assert_close(full[2:3], single, rtol=1e-4, atol=1e-5)


def test_discriminator_scales_and_realness_maps():
    disc = MultiScaleDiscriminator(CFG.discriminator)
    outs = disc(torch.randn(2, 3, 32, 32))
    assert len(outs) == CFG.discriminator.scales
    assert all(o[-1].shape[:2] == (2, 1) for o in outs)
    assert outs[0][-1].shape[-1] > outs[1][-1].shape[-1]


def test_whole_model_state_round_trip(tmp_path):
    torch.manual_seed(0)
    model = S2TFModel(CFG).eval()
    keys = set(model.state_dict())
    assert not any(k.startswith("mel.") for k in keys), "mel filters derive from the config, not the weights"
    assert {k.split(".")[0] for k in keys} == {
        "audio_identity", "audio_content", "visual_identity", "visual_irrelevant", "centroids", "generator",
    }  # fmt: skip


def test_modulated_conv_equals_stylegan2s_grouped_form():
    """The activation-scaling form against StyleGAN2's: per-sample modulated, demodulated weights in one
    grouped convolution, written out here."""
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, 3, style_dim=7)
    x, w = torch.randn(4, 6, 9, 9), torch.randn(4, 7)
    style = conv.modulation(w)
    wmod = (conv.weight * conv.scale)[None] * style[:, None, :, None, None]  # (B, cout, cin, k, k)
    wmod = wmod * torch.rsqrt(wmod.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
    grouped = F.conv2d(x.reshape(1, 4 * 6, 9, 9), wmod.flatten(0, 1), padding=1, groups=4).reshape(4, 5, 9, 9)
    torch.testing.assert_close(conv(x, w), grouped, rtol=1e-4, atol=1e-5)


def test_demodulation_normalises_output_scale():
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 64, 3, style_dim=8)
    x = torch.randn(2, 64, 16, 16)
    small, big = conv(x, torch.randn(2, 8)), None
    conv.modulation.bias.data *= 10  # styles 10x larger: demodulation cancels the scale
    big = conv(x, torch.randn(2, 8))
    ratio = big.std() / small.std()
    assert 0.5 < ratio < 2.0


def test_generator_noise_is_deterministic_per_seed():
    torch.manual_seed(0)
    gen = StyleGenerator(CFG.generator, 24, CFG.image_size).eval()
    for block in gen.blocks:  # make noise matter
        block.conv1.noise_strength.data.fill_(1.0)
    f = torch.randn(1, 24)
    with torch.no_grad():
        a = gen(f, gen.make_noise(3))
        b = gen(f, gen.make_noise(3))
        c = gen(f, gen.make_noise(4))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_log_mel_matches_librosa():
    import librosa

    a = CFG.audio
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(a.sample_rate).astype(np.float32) * 0.1
    ours = LogMel(a)(torch.from_numpy(wave))[0].numpy()
    ref = librosa.feature.melspectrogram(
        y=wave, sr=a.sample_rate, n_fft=a.n_fft, hop_length=a.hop_length, n_mels=a.n_mels,
        fmin=a.f_min, fmax=a.f_max, power=2.0, center=True, pad_mode="reflect", window="hann",
    )  # fmt: skip
    np.testing.assert_allclose(ours, np.log(np.maximum(ref, 1e-5)), atol=2e-3)


def test_log_mel_frame_rate_and_batching():
    mel = LogMel(CFG.audio)
    wave = torch.randn(2, 16000)
    out = mel(wave)
    assert out.shape == (2, CFG.audio.n_mels, 16000 // CFG.audio.hop_length + 1)
    torch.testing.assert_close(out[1:], mel(wave[1]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("samples", [16000 * 7 + 123, 16000 * 7 - 1, 7 * 160 * 100])
def test_long_clip_mel_in_chunks_equals_one_pass(samples):
    """The chunked STFT path for long clips gives the same frames as one pass, at every chunk edge."""
    mel = LogMel(CFG.audio)
    wave = torch.randn(samples, generator=torch.Generator().manual_seed(1)) * 0.1
    one = mel(wave, chunk_frames=10**9)
    chunked = mel(wave, chunk_frames=100)
    assert chunked.shape == one.shape == (1, CFG.audio.n_mels, samples // CFG.audio.hop_length + 1)
    torch.testing.assert_close(chunked, one, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("with_noise", [True, False])
def test_generator_inference_path_equals_the_training_maths(with_noise):
    """The inference form of the styled convs (chosen explicitly, as the pipeline does) draws the same images."""
    torch.manual_seed(0)
    model = S2TFModel(CFG).eval()
    for m in model.generator.modules():
        if hasattr(m, "noise_strength"):
            m.noise_strength.data.fill_(0.3)
            m.bias.data.normal_()
    f_id, f_ir = torch.randn(3, CFG.id_dim), torch.randn(3, CFG.ir_dim)
    noise = model.generator.make_noise(1) if with_noise else None
    if noise is None:
        torch.manual_seed(5)
    with torch.enable_grad():
        reference = model.generate(f_id, f_ir, noise).detach()
    from s2tf_cli.models.inference import use_inference_path

    assert use_inference_path(model) == 2 * len(model.generator.blocks)
    if noise is None:
        torch.manual_seed(5)
    with torch.no_grad():
        fast = model.generate(f_id, f_ir, noise)
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)
    if noise is not None:
        with torch.enable_grad():  # the path is the flag's choice, not autograd's: bit for bit the fast one
            assert torch.equal(model.generate(f_id, f_ir, noise).detach(), fast)


def test_arcface_margin_lowers_only_the_true_logit():
    torch.manual_seed(0)
    cent = IdentityCentroids(5, 8, scale=10.0, margin=0.3)
    f = torch.randn(4, 8)
    labels = torch.tensor([0, 1, 2, 3])
    logits = cent.arcface_logits(f, labels)
    plain = cent.scale * cent.cosine(f)
    true = logits.gather(1, labels[:, None])
    assert (true < plain.gather(1, labels[:, None])).all()
    mask = torch.ones_like(logits, dtype=torch.bool).scatter_(1, labels[:, None], False)
    torch.testing.assert_close(logits[mask], plain[mask])


def test_arcface_logit_matches_cos_theta_plus_m():
    cent = IdentityCentroids(2, 2, scale=1.0, margin=0.5)
    cent.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    f = torch.tensor([[math.cos(0.4), math.sin(0.4)]])
    logit = cent.arcface_logits(f, torch.tensor([0]))[0, 0]
    assert abs(logit.item() - math.cos(0.9)) < 1e-5


def test_generator_style_input_variant():
    from dataclasses import replace

    cfg = replace(CFG.generator, input="style")
    gen = StyleGenerator(cfg, 24, CFG.image_size).eval()
    f = torch.randn(2, 24)
    with torch.no_grad():
        out = gen(f, gen.make_noise(0))
    assert out.shape == (2, 3, CFG.image_size, CFG.image_size)
    with pytest.raises(ValueError, match="generator.input"):
        StyleGenerator(replace(CFG.generator, input="bogus"), 24, CFG.image_size)


def test_mel_filters_are_cached_and_equal_librosa(tmp_path, monkeypatch):
    import librosa

    from s2tf_cli.models.mel import mel_filters

    monkeypatch.setenv("S2TF_CACHE", str(tmp_path))
    a = CFG.audio
    first = mel_filters(a)
    (cached,) = (tmp_path / "mel").glob("*.npy")
    ref = librosa.filters.mel(sr=a.sample_rate, n_fft=a.n_fft, n_mels=a.n_mels, fmin=a.f_min, fmax=a.f_max)
    np.testing.assert_allclose(first, ref, rtol=1e-6)
    monkeypatch.setattr(librosa.filters, "mel", lambda **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    np.testing.assert_allclose(mel_filters(a), ref, rtol=1e-6)  # from the cache
    cached.write_bytes(b"garbage")
    monkeypatch.undo()
    monkeypatch.setenv("S2TF_CACHE", str(tmp_path))
    np.testing.assert_allclose(mel_filters(a), ref, rtol=1e-6)  # a damaged cache entry is recomputed


def test_folding_batchnorm_keeps_every_encoder_output():
    import copy

    from s2tf_cli.models.inference import fold_batchnorm

    torch.manual_seed(0)
    model = S2TFModel(preset("tiny")).eval()
    for m in model.modules():  # trained-looking statistics, not the identity transform
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 1.5)
    before = copy.deepcopy(model)
    n = fold_batchnorm(model)
    assert n > 0 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    a = model.cfg.audio
    mel = torch.randn(3, a.n_mels, 120)
    img = torch.rand(2, 3, model.cfg.image_size, model.cfg.image_size) * 2 - 1
    with torch.inference_mode():
        for name, x in [("audio_identity", mel), ("audio_content", mel[..., : a.content_window]),
                        ("visual_identity", img), ("visual_irrelevant", img)]:  # fmt: skip
            torch.testing.assert_close(getattr(model, name)(x), getattr(before, name)(x), atol=1e-4, rtol=1e-4)
    assert fold_batchnorm(before.train()) == 0, "a training-mode model is left alone"
