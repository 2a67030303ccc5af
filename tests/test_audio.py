"""Voice loading: unusual-but-valid files just work, bad ones get a one-line error naming the file."""

import subprocess

import numpy as np
import pytest
import soundfile as sf

from conftest import speechlike
from s2tf_cli.audio import has_speech, load_audio, normalize_loudness
from s2tf_cli.errors import InputError, UsageError

REF = speechlike(1.5, 16000, seed=3)


def _close_to_ref(wave):
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - len(REF)) <= 2
    n = min(len(wave), len(REF))
    corr = np.corrcoef(wave[:n], REF[:n])[0, 1]
    assert corr > 0.95, corr


@pytest.mark.parametrize(
    "suffix,subtype,sr,channels",
    [
        (".wav", "PCM_16", 16000, 1),
        (".WAV", "PCM_24", 48000, 2),
        (".wav", "PCM_U8", 8000, 1),
        (".wav", "FLOAT", 44100, 2),
        (".wav", "PCM_32", 22050, 6),
        (".flac", "PCM_16", 32000, 1),
        (".ogg", "VORBIS", 16000, 1),
        (".mp3", "MPEG_LAYER_III", 24000, 1),
    ],
)
def test_formats_rates_channels(tmp_path, suffix, subtype, sr, channels):
    import soxr

    wave = soxr.resample(REF, 16000, sr) if sr != 16000 else REF
    data = np.repeat(wave[:, None], channels, axis=1)
    path = tmp_path / f"vöice with space{suffix}"
    sf.write(path, data, sr, subtype=subtype)
    out = load_audio(path)
    if subtype in ("VORBIS", "MPEG_LAYER_III", "PCM_U8"):  # lossy or 8-bit: shape and rough content only
        assert abs(len(out) - len(REF)) < 0.1 * len(REF)
        return
    _close_to_ref(out)


def test_m4a_through_ffmpeg(tmp_path):
    import imageio_ffmpeg

    wav = tmp_path / "in.wav"
    sf.write(wav, REF, 16000)
    m4a = tmp_path / "in.m4a"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(wav), "-c:a", "aac", str(m4a)], check=True
    )
    out = load_audio(m4a)
    assert abs(len(out) - len(REF)) < 0.05 * 16000 + 2048


@pytest.mark.parametrize(
    "make,error,message",
    [
        (lambda p: None, UsageError, "no such file"),
        (lambda p: p.mkdir(), UsageError, "is a directory"),
        (lambda p: p.write_bytes(b""), InputError, "empty file"),
        (lambda p: p.write_text("hello, I am text\n" * 20), InputError, "not a readable audio file"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200)), InputError, "not a readable audio file"),
    ],
)
def test_bad_files_name_the_file(tmp_path, make, error, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(error, match=message) as info:
        load_audio(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_header_without_samples(tmp_path):
    path = tmp_path / "header.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(InputError, match="no audio samples|not a readable"):
        load_audio(path)


def test_speech_detector():
    assert has_speech(REF)
    assert not has_speech(np.zeros(16000, np.float32))
    assert not has_speech(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1)


def test_loudness_normalisation_equalises_levels():
    quiet, loud = normalize_loudness(REF * 0.05), normalize_loudness(REF * 3.0)
    assert abs(np.std(quiet) / np.std(loud) - 1) < 0.05
    assert np.all(normalize_loudness(np.zeros(16000, np.float32)) == 0)


def test_audio_track_of_a_video_file(tmp_path):
    """An MP4 with a picture and a voice: the voice is decoded through ffmpeg, the picture ignored."""
    import imageio_ffmpeg

    wav = tmp_path / "in.wav"
    sf.write(wav, REF, 16000)
    video = tmp_path / "clip with spaces.MP4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=64x64:d=1.5",
                    "-i", str(wav), "-shortest", "-c:v", "libx264", "-c:a", "aac", str(video)], check=True)  # fmt: skip
    out = load_audio(video)
    assert abs(len(out) - len(REF)) < 0.05 * 16000 + 2048
    n = min(len(out), len(REF)) - 2048
    lag = int(np.argmax(np.correlate(out[1024 : 1024 + 4000], REF[1024 - 512 : 1024 + 4000 + 512], "valid")))
    assert np.corrcoef(out[1024:n], REF[1024 - 512 + lag : n - 512 + lag])[0, 1] > 0.8


@pytest.mark.parametrize("gain,clip", [(10 ** (-40 / 20), False), (30.0, True)])
def test_very_quiet_and_clipped_speech_are_accepted(tmp_path, gain, clip):
    """Speech peaking at -50 dBFS and hard-clipped speech are still speech: loaded, detected, normalised."""
    wave = REF * gain
    if clip:
        wave = np.clip(wave, -1.0, 1.0)
    path = tmp_path / "v.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    out = load_audio(path)
    assert has_speech(out)
    norm = normalize_loudness(out)
    assert np.all(np.isfinite(norm)) and 0.05 < np.abs(norm).max() <= 1.0
