"""The Live tab in real headless Chromium with a fake microphone (issue 34). A module of its own: Playwright's
sync API cannot start while test_web_browser's module-scoped page still holds it."""

from pathlib import Path

import numpy as np
import pytest
from test_web_browser import CHROMIUM, _shots

REAL_RECORDING = Path(__file__).resolve().parent / "data" / "librispeech-1034-121119-0000-7s.wav"


def _bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "s2tf_bench", Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_live_in_the_browser_with_a_real_recording_as_microphone(tmp_path):
    """The Live tab in headless Chromium whose fake microphone plays a real recording (looping), on the
    default weights: frames arrive as the audio streams, in order, and once the identity has settled
    (after the first 3.2 s identity window) the mouth opens with the audio's loudness (the lip-sync
    evaluation's measure), not with the same audio reversed. Latency is reported, never asserted."""
    import json

    import soxr

    from s2tf_cli.evaluation import metrics as M
    from s2tf_cli.evaluation.protocol import frame_landmarks, mouth_openings
    from s2tf_cli.judges.landmarks import landmarks68
    from s2tf_cli.pipeline import S2TF

    model = S2TF.from_pretrained(None, device="cpu")
    res = _bench().live_in_browser(model, REAL_RECORDING, 12.0, CHROMIUM, record=True)
    assert res["error"] is None and res["end"] is not None
    end, got = res["end"], res["recorded"]
    assert end["frames"] >= 12 * 25 and end["sent"] + end["dropped"] == end["frames"]
    assert len(got) == res["frames"] == end["sent"] and len(got) >= 0.8 * end["frames"]
    index = np.array([g[0] for g in got])
    assert np.all(np.diff(index) > 0) and np.allclose([g[1] for g in got], (index + 0.5) / 25)
    assert all(g[2].shape == (model.cfg.image_size, model.cfg.image_size, 3) for g in got)
    wave = soxr.resample(res["audio"], res["rate"], 16000)
    assert abs(len(wave) / 16000 - end["frames"] / 25) < 0.5, "the page sent the audio the frames are of"
    loud = M.frame_loudness(wave, end["frames"])
    settled = np.array([g[1] >= 4.5 for g in got])
    opened = mouth_openings(frame_landmarks(np.stack([g[2] for g in got])[settled], landmarks68))
    corr = M.correlation(opened, loud[index[settled]])
    reversed_ = M.correlation(opened, loud[::-1][index[settled]])
    latency = np.array(res["latencies"])
    report = {"frames": end, "mouth-loudness corr": corr, "reversed audio": reversed_,
              "latency ms median": float(np.median(latency)), "latency ms p95": float(np.percentile(latency, 95))}  # fmt: skip
    print(json.dumps(report))
    (_shots(tmp_path) / "serve-live.json").write_text(json.dumps(report, indent=2) + "\n")
    (_shots(tmp_path) / "serve-live.png").write_bytes(res["screenshot"])
    assert corr >= 0.2 and corr - reversed_ >= 0.2, report
