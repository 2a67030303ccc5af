"""Property-based: whatever bytes, shapes and sample rates reach the audio and image loaders, the
answer is a valid result or one clean, one-line error naming the file; never a traceback or a hang."""

import io
import warnings

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from s2tf_cli.audio import load_audio
from s2tf_cli.config import AudioConfig
from s2tf_cli.errors import S2TFError
from s2tf_cli.images import load_image
from s2tf_cli.pipeline import checked_voice

SETTINGS = settings(max_examples=30, deadline=20_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
SUFFIXES = st.sampled_from([".wav", ".WAV", ".flac", ".mp3", ".ogg", ".m4a", ".mp4", ".bin", ""])
IMAGE_SUFFIXES = st.sampled_from([".jpg", ".png", ".webp", ".bmp", ".PNG", ".gif", ".tif", ""])


def _clean_error(exc: S2TFError, path) -> None:
    msg = str(exc)
    assert str(path) in msg and "\n" not in msg and "Traceback" not in msg


def _valid_audio(wave: np.ndarray) -> None:
    assert wave.dtype == np.float32 and wave.ndim == 1 and wave.size > 0 and np.all(np.isfinite(wave))


@SETTINGS
@given(data=st.binary(max_size=4096), suffix=SUFFIXES)
def test_random_bytes_as_audio(tmp_path, data, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    try:
        _valid_audio(load_audio(path))
    except S2TFError as exc:
        _clean_error(exc, path)


@SETTINGS
@given(data=st.binary(min_size=1, max_size=2048), cut=st.integers(0, 4000))
def test_corrupted_wav_files(tmp_path, data, cut):
    """A real WAV header with its body cut short or overwritten by junk."""
    buf = io.BytesIO()
    sf.write(buf, np.sin(np.arange(4000) / 7.0).astype(np.float32) * 0.3, 16000, format="WAV", subtype="PCM_16")
    raw = buf.getvalue()
    path = tmp_path / "corrupt.wav"
    path.write_bytes(raw[: 44 + cut] + data)
    try:
        _valid_audio(load_audio(path))
    except S2TFError as exc:
        _clean_error(exc, path)


@SETTINGS
@given(
    rate=st.integers(1000, 192_000),
    seconds=st.floats(0.001, 1.0),
    channels=st.integers(1, 8),
    subtype=st.sampled_from(["PCM_16", "PCM_24", "PCM_32", "FLOAT", "PCM_U8", "DOUBLE"]),
    level=st.sampled_from([0.0, 1e-6, 0.3, 1.0, 4.0]),
)
def test_any_rate_and_channel_count_decodes_to_16k_mono(tmp_path, rate, seconds, channels, subtype, level):
    n = max(1, int(rate * seconds))
    rng = np.random.default_rng(n)
    data = (rng.standard_normal((n, channels)) * level).astype(np.float32)
    path = tmp_path / "any.wav"
    sf.write(path, data, rate, subtype=subtype)
    wave = load_audio(path)
    _valid_audio(wave)
    assert abs(len(wave) - n * 16000 / rate) <= 2 + 16000 / rate
    try:  # too short, silent or clipped noise: refused by name, never NaN
        checked_voice(wave, AudioConfig())
    except S2TFError as exc:
        assert "<array>" in str(exc)


@SETTINGS
@given(data=st.binary(max_size=4096), suffix=IMAGE_SUFFIXES)
def test_random_bytes_as_image(tmp_path, data, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    try:
        im = load_image(path)
        assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3
    except S2TFError as exc:
        _clean_error(exc, path)


@SETTINGS
@given(
    h=st.integers(1, 64),
    w=st.integers(1, 64),
    mode=st.sampled_from(["L", "LA", "RGB", "RGBA", "P", "I;16", "I", "F", "1", "CMYK"]),
    fmt=st.sampled_from(["PNG", "BMP", "WEBP", "TIFF", "JPEG", "GIF"]),
)
def test_any_image_mode_and_format_becomes_rgb_uint8(tmp_path, h, w, mode, fmt):
    rng = np.random.default_rng(h * 100 + w)
    im = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / f"img.{fmt.lower()}"
    try:
        with warnings.catch_warnings():  # Pillow 12 deprecates writing mode I as PNG; such files exist and must load
            warnings.simplefilter("ignore", DeprecationWarning)
            im.save(path, format=fmt)
    except (OSError, ValueError, KeyError):  # PIL cannot write this mode in this format: nothing to load
        return
    out = load_image(path)  # a valid image in any mode must load
    assert out.dtype == np.uint8 and out.shape == (h, w, 3)
