"""The streamed voice `talk` reads from disk gives what the whole-clip path gives."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speechlike

from s2tf_cli.audio import load_audio, normalize_loudness
from s2tf_cli.errors import InputError, UsageError
from s2tf_cli.mel_source import DecodedVoice, MemoryMel, StreamedMel
from s2tf_cli.pipeline import IDENTITY_BATCH


@pytest.fixture(scope="module")
def long_voice(tmp_path_factory):
    """16 kHz mono (decoding is exact) and long enough for several identity batches and mel blocks."""
    path = tmp_path_factory.mktemp("long") / "long voice.wav"
    sf.write(path, speechlike(45.0, f0=150, seed=7), 16000, subtype="FLOAT")
    return path


def test_streamed_mel_spans_equal_the_whole_clip_mel(pipeline, long_voice, tmp_path):
    a = pipeline.cfg.audio
    decoded = DecodedVoice.open(long_voice, tmp_path, a)
    streamed = StreamedMel(decoded, pipeline.model.mel, pipeline.device)
    whole = MemoryMel(pipeline._mel(load_audio(long_voice)))
    assert streamed.frames == whole.frames
    n = whole.frames
    for lo, hi in [(-20, 30), (0, 1), (500, 1700), (n - 40, n + 25), (n + 3, n + 9), (-9, -2), (-5, n + 5)]:
        got, want = streamed.span(lo, hi), whole.span(lo, hi)
        assert got.shape == (a.n_mels, hi - lo)
        torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)
    silence = np.log(1e-5)
    assert torch.all(whole.span(n, n + 4) == silence) and torch.all(whole.span(-3, 0) == silence)


def test_streamed_identity_and_frames_equal_the_in_memory_path(pipeline, long_voice, tmp_path):
    a = pipeline.cfg.audio
    decoded = DecodedVoice.open(long_voice, tmp_path, a)
    streamed = StreamedMel(decoded, pipeline.model.mel, pipeline.device)
    assert len(range(0, streamed.frames, 160)) > IDENTITY_BATCH  # 3.2 s windows, half overlap: several batches
    torch.testing.assert_close(
        pipeline.identity_from_mel(streamed), pipeline.voice_identity(long_voice), atol=1e-5, rtol=1e-4
    )
    n1, f1 = pipeline.talk_frames(decoded, fps=25, batch_size=16)
    n2, f2 = pipeline.talk_frames(long_voice, fps=25, batch_size=16)
    assert n1 == n2 == int(np.ceil(45.0 * 25))
    for k, (x, y) in enumerate(zip(f1, f2)):
        if k % 97 == 0 or k == n1 - 1:  # spot checks over the clip, the end included
            assert np.abs(x.astype(int) - y.astype(int)).max() <= 1


def test_decoding_resamples_and_mixes_down_like_load_audio(tmp_path):
    path = tmp_path / "stereo 44k.wav"
    wave = speechlike(3.0, 44100, seed=3)
    sf.write(path, np.stack([wave, 0.5 * wave], axis=1), 44100, subtype="PCM_24")
    decoded = DecodedVoice.open(path, tmp_path, _audio_config())
    ref = load_audio(path)
    got = sf.read(decoded.path, dtype="float32")[0]
    assert abs(len(got) - len(ref)) <= 2 and decoded.samples == len(got)
    m = min(len(got), len(ref))
    assert np.abs(got[:m] - ref[:m]).max() < 1e-3
    assert abs(decoded.gain - np.max(np.abs(normalize_loudness(ref))) / np.max(np.abs(ref))) < 1e-2


def test_decoding_falls_back_to_ffmpeg_for_m4a(tmp_path):
    import imageio_ffmpeg

    src = tmp_path / "v.wav"
    sf.write(src, speechlike(2.0, seed=5), 16000)
    m4a = tmp_path / "V.M4A"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(src), "-c:a", "aac", str(m4a)], check=True
    )
    decoded = DecodedVoice.open(m4a, tmp_path, _audio_config())
    assert abs(decoded.duration - 2.0) < 0.1


def _audio_config():
    from s2tf_cli.config import preset

    return preset("tiny").audio


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: sf.write(p, np.zeros(16000 * 2, np.float32), 16000), "no speech found"),
        (lambda p: sf.write(p, speechlike(0.3), 16000), "at least"),
        (lambda p: sf.write(p, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT"), "NaN"),
        (lambda p: p.write_text("not audio at all"), "not a readable audio file"),
        (lambda p: p.write_bytes(b""), "empty file"),
    ],
)
def test_bad_voices_are_refused_naming_the_file(tmp_path, make, message):
    work = tmp_path / "work"
    work.mkdir()
    path = tmp_path / "bad voice.wav"
    make(path)
    with pytest.raises(InputError, match=message) as err:
        DecodedVoice.open(path, work, _audio_config())
    assert str(path) in str(err.value)


def test_missing_file_and_folder_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        DecodedVoice.open(tmp_path / "nope.wav", tmp_path, _audio_config())
    with pytest.raises(UsageError, match="is a directory"):
        DecodedVoice.open(tmp_path, tmp_path, _audio_config())


def test_arrays_go_through_the_same_checks(tmp_path):
    with pytest.raises(InputError, match="<array>: expected mono"):
        DecodedVoice.open(np.zeros((2, 16000), np.float32), tmp_path, _audio_config())
    decoded = DecodedVoice.open(speechlike(1.5), tmp_path, _audio_config())
    assert decoded.samples == 24000 and decoded.name == "<array>"
