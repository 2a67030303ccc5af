"""The face talking as the voice arrives (`s2tf talk - --stream`): push 16 kHz samples, take the frames they
complete. A frame needs the audio up to half a content window past its time (the look-ahead), so it
comes that late and no later; memory stays flat (a few seconds of audio, a running identity sum, the last
minute's 20 ms levels for the loudness gain).

The identity is the mean of unit f_id^a of 3.2 s windows heard so far that are mostly speech (as in
`S2TF.voice_identity`), re-estimated as each window completes; the drawn identity eases toward it frame by
frame, so the face settles instead of jumping. Before the first window the face is the mean of the shared
centroids (`drawable_identity` of their mean)."""

from __future__ import annotations

import collections
import math

import numpy as np
import torch
import torch.nn.functional as F

from . import audio as audio_io
from . import vad
from .eyes import EyeMotion, with_eyes
from .models.mel import LOG_FLOOR
from .motion import check_motion

GAIN_HISTORY_FRAMES = 3000  # 60 s of 20 ms frames


class LiveTalker:
    def __init__(self, s2tf, fps: float = 25.0, pose=None, seed: int | None = None, ease: float = 0.08,
                 motion: str = "natural"):  # fmt: skip
        a = s2tf.cfg.audio
        self.s2tf, self.a, self.fps, self.ease = s2tf, a, fps, ease
        self.hop, self.half = a.hop_length, a.content_window // 2
        self.win = int(round(a.identity_window_s * a.sample_rate / a.hop_length))  # mel frames
        self.keep = max(int(a.identity_window_s * a.sample_rate) + 2 * a.n_fft, a.sample_rate)  # samples kept
        self.audio = np.zeros(0, np.float32)  # the last `keep` samples
        self.offset = 0  # global index of audio[0]
        # 20 ms levels of the last minute, for the running loudness gain: bounded, so an hour-long session
        # neither grows nor slows (the whole history once cost a concatenation per push)
        self.rms: collections.deque[float] = collections.deque(maxlen=GAIN_HISTORY_FRAMES)
        self.rms_rest = np.zeros(0, np.float32)  # samples short of a whole 20 ms frame, for the next push
        self.gain = 1.0
        self.emitted = 0
        self.next_window = self.win  # global mel frame at which the next identity window ends
        self.id_sum = None
        centroids = F.normalize(s2tf.model.centroids.weight.detach().float(), dim=-1)
        self.shown = s2tf.drawable_identity(F.normalize(centroids.mean(0), dim=-1)).to(s2tf.device)
        self.target = self.shown
        self.seed = seed
        self.pose = s2tf.pose_feature(pose) if pose is not None else None
        self.noise = s2tf.model.generator.make_noise(seed or 0, s2tf.device)
        check_motion(motion)
        natural = motion == "natural"  # causal both: a stream moves its head and eyes as `talk` does
        self.head = s2tf.head_motion(fps, seed or 0) if natural else None
        self.eyes = EyeMotion(fps, seed or 0) if natural else None

    @property
    def lookahead_s(self) -> float:
        """Audio a frame waits for past its own time (half a content window, plus the STFT's half window)."""
        return (self.half * self.hop + self.a.n_fft // 2) / self.a.sample_rate

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        samples = np.asarray(samples, np.float32).reshape(-1)
        frame = self.a.sample_rate // 50
        pending = np.concatenate([self.rms_rest, samples])
        whole = len(pending) // frame * frame
        self.rms.extend(audio_io.frame_rms(pending[:whole], frame).tolist())
        self.rms_rest = pending[whole:]
        self.gain = audio_io.loudness_gain(np.fromiter(self.rms, np.float64, len(self.rms)))  # once a push
        self.audio = np.concatenate([self.audio, samples])
        heard = self.offset + len(self.audio)
        self._update_identity(heard, final=False)
        ready = math.floor((heard / self.a.sample_rate - self.lookahead_s) * self.fps - 0.5)
        frames = self._frames(self.emitted, max(self.emitted, ready + 1), heard)
        if len(self.audio) > self.keep:
            cut = len(self.audio) - self.keep
            self.audio, self.offset = self.audio[cut:], self.offset + cut
        return frames

    def close(self) -> list[np.ndarray]:
        """The frames still owed (ceil(duration * fps) in all, as `talk` makes), hearing silence past the end."""
        heard = self.offset + len(self.audio)
        total = math.ceil(heard / self.a.sample_rate * self.fps - 1e-9)
        return self._frames(self.emitted, total, heard)

    # ------------------------------------------------------------------ internals
    def _mel(self, lo_frame: int, hi_frame: int, heard: int) -> torch.Tensor:
        """(n_mels, hi - lo) log-mel frames [lo, hi) of the stream; frames past what was heard hear silence."""
        a = self.a
        lo_sample = max(self.offset, (lo_frame * self.hop - a.n_fft) // self.hop * self.hop)
        wave = self.audio[lo_sample - self.offset :]
        wave = audio_io.apply_gain(wave, self.gain)
        pad = max(0, hi_frame * self.hop + a.n_fft - heard)  # silence past the end, as `talk` hears it
        wave = np.concatenate([wave, np.zeros(pad, np.float32)])
        with torch.inference_mode():
            mel = self.s2tf.model.mel(torch.from_numpy(wave).to(self.s2tf.device))[0]
        start = lo_sample // self.hop  # global index of mel[:, 0]
        return mel[:, lo_frame - start : hi_frame - start]

    def _update_identity(self, heard: int, final: bool) -> None:
        a = self.a
        while (self.next_window * self.hop + a.n_fft // 2) <= heard:
            lo = self.next_window - self.win
            if lo * self.hop >= self.offset:
                mel = self._mel(lo, self.next_window, heard)
                seg = self.audio[lo * self.hop - self.offset : self.next_window * self.hop - self.offset]
                probs = vad.speech_probabilities(audio_io.apply_gain(seg, self.gain), a.sample_rate)
                if len(probs) and float(np.mean(probs >= vad.THRESHOLD)) >= vad.MOSTLY_SPEECH:
                    with torch.inference_mode():
                        e = F.normalize(self.s2tf.model.audio_identity(mel[None]), dim=-1)[0]
                    self.id_sum = e if self.id_sum is None else self.id_sum + e
                    target = self.s2tf.drawable_identity(F.normalize(self.id_sum, dim=-1))
                    if self.seed is not None:
                        target = self.s2tf._sample_identity(target, self.seed)
                    self.target = target
            self.next_window += self.win // 2

    def _frames(self, start: int, stop: int, heard: int) -> list[np.ndarray]:
        from . import images

        if stop <= start:
            return []
        mel_rate = self.a.sample_rate / self.hop
        centres = [int(round((i + 0.5) / self.fps * mel_rate)) - self.half for i in range(start, stop)]
        lo, hi = max(0, centres[0]), centres[-1] + self.a.content_window
        mel = self._mel(lo, hi, heard)
        floor = math.log(LOG_FLOOR)
        windows = []
        for c in centres:
            w = mel[:, max(c, 0) - lo : c - lo + self.a.content_window]
            if c < 0:  # before the stream began: silence
                w = torch.cat([torch.full((mel.shape[0], -c), floor, device=mel.device), w], dim=1)
            windows.append(w)
        ids = []
        for _ in range(start, stop):
            self.shown = F.normalize(self.shown + self.ease * (self.target - self.shown), dim=-1)
            ids.append(self.shown)
        with torch.inference_mode(), self.s2tf._per_frame():
            stacked = torch.stack(windows)
            f_s = self.s2tf.model.content(stacked)
            base = self.pose.to(f_s.dtype) if self.pose is not None else torch.zeros_like(f_s)
            f_ir = self.s2tf.model.speak(base, f_s)
            if self.head is not None:
                f_ir = f_ir + self.head(stacked).to(f_ir.dtype)
            imgs = self.s2tf.model.generate(torch.stack(ids).to(f_s.dtype), f_ir, self.noise).float()
        self.emitted = stop
        return list(with_eyes(images.to_uint8(imgs), self.eyes))


class PCMResampler:
    """16-bit little-endian PCM chunks of any size (a sample may be split between two) at one rate ->
    float32 at another, continuous across chunks: what the web page and `talk - --stream` send."""

    def __init__(self, rate_in: int, rate_out: int):
        self.rate_in, self.rate_out = rate_in, rate_out
        self.stream = None
        if rate_in != rate_out:
            import soxr

            self.stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")
        self.odd = b""  # a trailing half sample, kept for the next chunk

    def __call__(self, data: bytes, last: bool = False) -> np.ndarray:
        data = self.odd + data
        even = len(data) - len(data) % 2
        self.odd = data[even:]
        x = np.frombuffer(data[:even], "<i2").astype(np.float32) / 32768.0
        if self.stream is not None:
            x = self.stream.resample_chunk(x, last=last)
        return x
