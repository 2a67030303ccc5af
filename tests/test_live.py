"""`s2tf talk - --stream`: PCM in on stdin, raw frames out as the audio arrives (issue 34's file-free CLI)."""

import numpy as np
from conftest import speechlike
from typer.testing import CliRunner

from s2tf_cli.cli import app

runner = CliRunner()


def _pcm(wave: np.ndarray) -> bytes:
    return (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()


def test_stream_cli_writes_one_frame_per_25th_of_a_second_and_moves_only_with_speech(tiny_weights):
    wave = np.concatenate([np.zeros(16000, np.float32), speechlike(2.0, seed=3)])
    args = ["talk", "-", "--stream", "-w", str(tiny_weights), "--device", "cpu"]
    result = runner.invoke(app, args, input=_pcm(wave))
    assert result.exit_code == 0, result.output
    size = 32  # the tiny preset
    n = len(result.stdout_bytes) // (size * size * 3)
    assert n * size * size * 3 == len(result.stdout_bytes) and n == int(np.ceil(3.0 * 25))
    frames = np.frombuffer(result.stdout_bytes, np.uint8).reshape(n, size, size, 3).astype(int)
    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    assert np.all(steps[:18] == 0), "silence before any speech: one still face"
    assert steps[30:].max() > 0, "speech moves the face"
    again = runner.invoke(app, args, input=_pcm(wave))
    assert again.stdout_bytes == result.stdout_bytes, "deterministic"


def test_frames_come_as_soon_as_their_audio_and_memory_stays_flat(pipeline):
    from s2tf_cli.live import LiveTalker

    talker = LiveTalker(pipeline, fps=25)
    wave = speechlike(20.0, seed=5)
    chunk = 640  # 40 ms
    for k in range(0, len(wave), chunk):
        talker.push(wave[k : k + chunk])
        heard = (k + chunk) / 16000
        owed = int(np.floor((heard - talker.lookahead_s) * 25 - 0.5)) + 1
        assert talker.emitted >= owed, (heard, talker.emitted)  # nothing waits longer than the look-ahead
        assert len(talker.audio) <= talker.keep
    assert talker.lookahead_s < 0.3
    rest = talker.close()
    assert talker.emitted == 500 and all(f.shape == (32, 32, 3) for f in rest)
    assert talker.id_sum is not None, "the speech heard set the identity"


def test_stream_usage_errors(tiny_weights, tmp_path, voices):
    assert runner.invoke(app, ["talk", "-", "-w", str(tiny_weights)]).exit_code == 2
    wrong = runner.invoke(app, ["talk", str(voices["low"]), "--stream", "-w", str(tiny_weights)])
    assert wrong.exit_code == 2 and "give '-' as the voice" in wrong.output
    missing = runner.invoke(app, ["talk", str(voices["low"]), "-w", str(tiny_weights)])
    assert missing.exit_code == 2 and "needs --output/-o" in missing.output


def test_stream_cli_writes_a_fragmented_mp4_with_the_voice(tiny_weights, tmp_path):
    """--stream-format mp4: fragments (moof boxes) as the audio arrives, one frame per 40 ms, the voice as its
    AAC track, provenance in its tags; decodable by ffmpeg as it stands."""
    import subprocess

    import imageio_ffmpeg

    wave = np.concatenate([np.zeros(16000, np.float32), speechlike(2.0, seed=3)])
    args = ["talk", "-", "--stream", "--stream-format", "mp4", "-w", str(tiny_weights), "--device", "cpu"]
    result = runner.invoke(app, args, input=_pcm(wave))
    assert result.exit_code == 0, result.output
    data = result.stdout_bytes
    assert data[4:8] == b"ftyp" and data.count(b"moof") >= 5, "fragmented, not one moov at the end"
    path = tmp_path / "live.mp4"
    path.write_bytes(data)
    reader = imageio_ffmpeg.read_frames(str(path))
    assert reader.__next__()["size"] == (32, 32) and len(list(reader)) >= 75
    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == 75
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True,
                           text=True).stderr  # fmt: skip
    assert "Audio: aac" in probe and "s2tf_synthetic" in probe.replace(" ", "").lower().replace(":", "_")
    bad = runner.invoke(app, [*args[:3], "--stream-format", "gif", *args[5:]], input=b"")
    assert bad.exit_code == 2 and "--stream-format must be rgb24 or mp4, not 'gif'" in bad.output


def test_the_loudness_gain_follows_the_last_minute_in_bounded_memory(pipeline):
    """A loud talker, then the same speech 20 dB quieter for over a minute: the gain comes to the quiet
    level's (as a whole-clip gain of the quiet part would) and the level history stays at a minute."""
    from s2tf_cli import audio as audio_io
    from s2tf_cli.live import GAIN_HISTORY_FRAMES, LiveTalker

    talker = LiveTalker(pipeline, fps=5)
    loud = speechlike(10.0, seed=1) * 0.9
    quiet = np.tile(speechlike(10.0, seed=2), 7) * 0.09
    for wave in (loud, quiet):
        for k in range(0, len(wave), 333):  # chunks that split 20 ms frames
            talker.push(wave[k : k + 333])
    assert len(talker.rms) == GAIN_HISTORY_FRAMES
    expected = audio_io.loudness_gain(audio_io.frame_rms(quiet[-GAIN_HISTORY_FRAMES * 320 :]))
    assert abs(np.log(talker.gain / expected)) < 0.05
