"""The public API: `S2TF.from_pretrained(...)` and its three jobs, face, talk and retrieve.

How the paper's features are put together at inference (§4.1, last paragraph):
- face without a pose reference: G(cat(f_id^a, f_s^a)), a frontalised face; f_s^a is the content
  feature of silence, so the mouth is closed;
- face with a pose reference: G(cat(f_id^a, f_ir^pose + f_s^a));
- talk: f_id^a averaged over the clip's 3.2 s windows, f_s^a per video frame from the mel window
  centred on that frame, plus f_ir^pose of the reference (or nothing: frontal).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import audio as audio_io
from . import images
from .errors import InputError, NoFaceError, UsageError
from .eyes import EyeMotion, with_eyes
from .face_track import face_crops, is_video
from .faces import find_face
from .gallery_index import Match, Skipped  # noqa: F401  (part of the API)
from .hub import WeightsSource, load_model, resolve
from .mel_source import DecodedVoice, MelSource, MemoryMel, StreamedMel, frame_windows
from .models.inference import fold_batchnorm, use_inference_path
from .models.mel import LOG_FLOOR
from .models.s2tf import S2TFModel, slerp, turn
from .motion import HeadMotion, check_motion
from .outputs import atomic_path, provenance
from .precision import select_precision

log = logging.getLogger(__name__)

# Frames generated at once. On a 2-core CPU smaller batches are faster (activations stay in cache):
# 10 s of talk, content encoder + generator, took 0.37x real time at 4, 0.33x at 8, 0.43x at 16.
# A GPU wants large ones.
FRAME_BATCH = {"cpu": 8, "cuda": 32}
IDENTITY_BATCH = 8  # identity windows encoded at once: bounds memory (~80 MB of activations) on long audio
Voice = str | Path | np.ndarray  # a file, or 16 kHz mono float32 samples
Progress = Callable[[int], None]  # called with the number of items just finished


def select_device(device: str | torch.device = "auto") -> torch.device:
    """The one place a device is chosen: "auto" takes CUDA when present."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"--device must be auto, cpu or cuda, not {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(device)


def checked_voice(voice: Voice, a) -> np.ndarray:
    """Decoded and checked mono samples at `a.sample_rate` (as recorded: loudness is normalised later)."""
    return checked_speech(voice, a)[0]


def speech_of(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """`vad.speech_probabilities` of a clip heard at a normal level."""
    from . import vad

    return vad.speech_probabilities(audio_io.normalize_loudness(wave), sample_rate)


def checked_speech(voice: Voice, a) -> tuple[np.ndarray, np.ndarray]:
    """`checked_voice`'s samples and their speech probabilities, which both the refusal and the choice of
    identity windows read (the detector runs once)."""
    from . import vad

    name = str(voice) if not isinstance(voice, np.ndarray) else "<array>"
    wave = voice.astype(np.float32) if isinstance(voice, np.ndarray) else audio_io.load_audio(voice, a.sample_rate)
    if wave.ndim != 1:
        raise InputError(f"{name}: expected mono samples, got shape {wave.shape}")
    if not np.all(np.isfinite(wave)):
        raise InputError(f"{name}: audio holds NaN or infinite samples")
    duration = len(wave) / a.sample_rate
    if duration < a.min_duration_s:
        raise InputError(f"{name}: audio is {duration:.2f} s long; at least {a.min_duration_s} s of speech is needed")
    speech = speech_of(wave, a.sample_rate)
    if vad.seconds(speech) < vad.MIN_SPEECH_S:
        raise InputError(f"{name}: no speech found (silence, noise or music without a voice)")
    return wave, speech


def identity_window_starts(frames: int, a) -> list[int]:
    """Start frames of the overlapping identity windows: half overlap, plus one flush with the end when
    that adds at least a quarter window of unheard audio (a near-copy of the last window would cost a
    whole encoder pass for a few frames)."""
    win = int(round(a.identity_window_s * a.sample_rate / a.hop_length))
    if frames <= win:
        return [0]
    starts = list(range(0, frames - win + 1, win // 2))
    if frames - (starts[-1] + win) >= win // 4:
        starts.append(frames - win)
    return starts


def speech_window_starts(probs: np.ndarray, frames: int, a) -> list[int]:
    """The identity windows that are mostly speech (the most speech-filled one when none is), given the
    clip's `vad.speech_probabilities`: pauses, music and noise between phrases say nothing about the voice."""
    from . import vad

    starts = identity_window_starts(frames, a)
    if len(starts) < 2:
        return starts
    win = int(round(a.identity_window_s * a.sample_rate / a.hop_length))
    share = vad.speech_share(probs, starts, win, a.hop_length)
    return [s for s, x in zip(starts, share) if x >= vad.MOSTLY_SPEECH] or [starts[int(np.argmax(share))]]


def identity_windows(mel: torch.Tensor, a, starts: list[int] | None = None) -> torch.Tensor:
    """(N, n_mels, win) identity windows of a clip (all, or those starting at `starts`)."""
    win = int(round(a.identity_window_s * a.sample_rate / a.hop_length))
    if mel.shape[-1] <= win:
        return mel[None]
    starts = identity_window_starts(mel.shape[-1], a) if starts is None else starts
    return torch.stack([mel[:, s : s + win] for s in starts])


class S2TF:
    """A loaded S2TF model on one device. Deterministic: the same input gives the same output."""

    can_embed_faces = True  # a face encoder: retrieval, matching and talk (`evaluation.protocol.Scored`)

    def __init__(
        self, model: S2TFModel, device: torch.device, source: WeightsSource | None = None, precision: str = "auto"
    ):
        self.model = model.to(device).eval()
        fold_batchnorm(self.model)  # this copy only ever runs inference
        use_inference_path(self.model)
        self.device = device
        self.source = source
        self.cfg = model.cfg
        self.dtype = select_precision(precision, device)

    @property
    def precision(self) -> str:
        return "bf16" if self.dtype is not None else "fp32"

    def _per_frame(self):
        """Autocast for the per-frame networks (bf16 where chosen); identity encoders stay in fp32."""
        return torch.autocast(self.device.type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None)

    @classmethod
    def from_pretrained(
        cls,
        weights: str | Path | WeightsSource | None = None,
        device: str = "auto",
        cache_dir: str | Path | None = None,
        precision: str = "auto",
    ) -> S2TF:
        """`weights`: a registry name, `org/name[@revision]` on the Hub, or a local folder (a path wins);
        None means $S2TF_WEIGHTS or the embedded default; an already resolved `WeightsSource` is used as it
        is. `precision`: auto, fp32 or bf16."""
        dev = select_device(device)
        select_precision(precision, dev)  # a bad value fails before the weights load
        if isinstance(weights, WeightsSource):
            source = weights
        else:
            source = resolve(str(weights) if weights is not None else None, cache_dir=cache_dir)
        return cls(load_model(source), dev, source, precision)

    @property
    def weights_label(self) -> str:
        return self.source.label if self.source else "in-memory model"

    def info(self) -> dict:
        cfg = self.cfg
        params = sum(p.numel() for p in self.model.parameters())
        return {
            "weights": self.source.spec if self.source else None,
            "source": self.source.kind if self.source else None,
            "folder": str(self.source.folder) if self.source else None,
            "revision": self.source.revision if self.source else None,
            "sha256": self.source.sha256 if self.source else None,
            "preset": cfg.preset,
            "image_size": cfg.image_size,
            "id_dim": cfg.id_dim,
            "ir_dim": cfg.ir_dim,
            "identities": cfg.num_identities,
            "parameters": params,
            "device": str(self.device),
            "precision": self.precision,
        }

    # ------------------------------------------------------------------ audio side
    def load_voice(self, voice: Voice) -> np.ndarray:
        return checked_voice(voice, self.cfg.audio)

    def _mel(self, wave: np.ndarray) -> torch.Tensor:
        """(n_mels, frames) log-mel of the whole clip, after loudness normalisation."""
        wave = audio_io.normalize_loudness(wave)
        with torch.inference_mode():
            return self.model.mel(torch.from_numpy(wave).to(self.device))[0]

    def identity_from_mel(self, mel: torch.Tensor | MelSource, starts: list[int] | None = None) -> torch.Tensor:
        """f_id^a (id_dim,), unit length: the mean of unit embeddings of overlapping 3.2 s windows (all, or
        those at `starts`)."""
        a = self.cfg.audio
        src = MemoryMel(mel) if isinstance(mel, torch.Tensor) else mel
        win = int(round(a.identity_window_s * a.sample_rate / a.hop_length))
        starts = identity_window_starts(src.frames, a) if starts is None else starts
        total = torch.zeros(self.cfg.id_dim, device=self.device)
        with torch.inference_mode():  # a few windows at a time: an hour of audio is ~2,000 windows
            for i in range(0, len(starts), IDENTITY_BATCH):
                batch = starts[i : i + IDENTITY_BATCH]
                if src.frames <= win:
                    chunk = src.span(0, src.frames)[None]
                else:
                    span = src.span(batch[0], batch[-1] + win)
                    chunk = torch.stack([span[:, s - batch[0] : s - batch[0] + win] for s in batch])
                total += F.normalize(self.model.audio_identity(chunk), dim=-1).sum(0)
        return F.normalize(total, dim=-1)

    def voice_identity(self, voice: Voice) -> torch.Tensor:
        wave, speech = checked_speech(voice, self.cfg.audio)
        mel = self._mel(wave)
        return self.identity_from_mel(mel, speech_window_starts(speech, mel.shape[-1], self.cfg.audio))

    def _speech(self, wave: np.ndarray) -> np.ndarray:
        return speech_of(wave, self.cfg.audio.sample_rate)

    def content_windows(self, mel: torch.Tensor | MelSource, fps: float, start: int, stop: int) -> torch.Tensor:
        """(stop-start, n_mels, window) mel windows centred on video frames [start, stop); frames past
        the audio hear silence."""
        return frame_windows(MemoryMel(mel) if isinstance(mel, torch.Tensor) else mel, self.cfg.audio, fps, start, stop)

    def silence_content(self) -> torch.Tensor:
        """f_s^a of silence: the closed-mouth, neutral content feature."""
        a = self.cfg.audio
        silent = torch.full((1, a.n_mels, a.content_window), math.log(LOG_FLOOR), device=self.device)
        with torch.inference_mode(), self._per_frame():
            return self.model.content(silent)[0].float()

    # ----------------------------------------------------------------- visual side
    def _face_crop(self, image: str | Path | np.ndarray, aligned: bool) -> np.ndarray:
        arr = images.load_image(image) if not isinstance(image, np.ndarray) else image
        size = self.cfg.image_size
        if aligned:
            return images.resize(arr, size)
        crop, count = find_face(arr, size)
        if crop is None:
            raise NoFaceError(f"{image if not isinstance(image, np.ndarray) else '<array>'}: no face found")
        if count > 1:
            log.warning(
                "%s: %d faces found; using the largest", "<array>" if isinstance(image, np.ndarray) else image, count
            )
        return crop

    def _encode_images(self, crops: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = torch.stack([images.to_tensor(c) for c in crops]).to(self.device)
        with torch.inference_mode():
            return self.model.visual_identity(batch), self.model.irrelevant(batch)

    def reconstruct(self, image: str | Path | np.ndarray, aligned: bool = False) -> np.ndarray:
        """G(f_id^v, f_ir^v) of a face photo: the visual autoencoder, which shows what G can draw of a face
        it is given (evaluation scores it on people it never trained on)."""
        f_id, f_ir = self._encode_images([self._face_crop(image, aligned)])
        with torch.inference_mode(), self._per_frame():
            img = self.model.generate(f_id, f_ir, self.model.generator.make_noise(0, self.device)).float()
        return images.to_uint8(img)[0]

    def pose_feature(self, image: str | Path | np.ndarray, aligned: bool = False) -> torch.Tensor:
        """f_ir^v (ir_dim,) of a reference face: its head pose (and expression)."""
        _, f_ir = self._encode_images([self._face_crop(image, aligned)])
        return f_ir[0]

    def pose_track(self, video: str | Path, fps: float, n_frames: int) -> torch.Tensor:
        """(n_frames, ir_dim) f_ir^v of a pose video's face at `fps`, smoothed over 3 frames; a video
        shorter than the voice holds its last pose."""
        crops = face_crops(Path(video), fps, self.cfg.image_size)[:n_frames]
        feats = []
        with torch.inference_mode():
            for i in range(0, len(crops), 32):
                batch = torch.stack([images.to_tensor(c) for c in crops[i : i + 32]]).to(self.device)
                feats.append(self.model.irrelevant(batch).float())
        track = torch.cat(feats)
        if len(track) > 2:
            padded = torch.cat([track[:1], track, track[-1:]])
            track = (padded[:-2] + padded[1:-1] + padded[2:]) / 3
        if len(track) < n_frames:
            track = torch.cat([track, track[-1:].expand(n_frames - len(track), -1)])
        return track

    def head_motion(self, fps: float, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """A causal head-motion source for `talk`: content windows in, f_ir offsets in the pose entries
        out (motion.py); None for weights without pose entries (their head cannot be turned on request)."""
        cfg = self.cfg
        if not cfg.pose_scale:
            log.info("these weights carry no pose entries in f_ir: the head stays still")
            return None
        motion = HeadMotion(fps, seed)
        scale = torch.tensor(cfg.pose_scale, dtype=torch.float32, device=self.device)
        if cfg.pose_render:  # G draws this share of an offset: ask for more, so the head moves as stated
            scale = scale * torch.tensor(cfg.pose_render, dtype=torch.float32, device=self.device)
        half = cfg.audio.content_window // 2

        def offsets(windows: torch.Tensor) -> torch.Tensor:
            energy = windows[:, :, half - 1 : half + 1].float().mean(dim=(1, 2)).cpu().numpy()
            pose = torch.from_numpy(motion.step(energy)).float().to(self.device) / scale[:3]
            return F.pad(pose, (0, cfg.ir_dim - pose.shape[1]))

        return offsets

    def photo_identities(self, batch: torch.Tensor) -> torch.Tensor:
        """Unit f_id^v of (B, 3, H, W) face crops, each averaged with its mirror image's: a person's photo
        and its mirror show the same person, and the mean of both ranks a voice's own photo higher
        (95 people held out of a voice head: R@10 20.0 -> 25.5 %, median rank 27.5 -> 25.5)."""
        with torch.inference_mode():
            both = F.normalize(self.model.visual_identity(torch.cat([batch, batch.flip(-1)])).float(), dim=-1)
        return F.normalize(both[: len(batch)] + both[len(batch) :], dim=-1)

    def face_identity(self, image: str | Path | np.ndarray, aligned: bool = False) -> torch.Tensor:
        """f_id^v (id_dim,), unit length (`photo_identities`)."""
        crop = images.to_tensor(self._face_crop(image, aligned))[None].to(self.device)
        return self.photo_identities(crop)[0]

    # ------------------------------------------------------------------------- jobs
    def drawable_identity(self, f_id: torch.Tensor) -> torch.Tensor:
        """The f_id that G draws: an unseen voice's estimate lies between the training faces' identities
        (cosine ~0.3 to the nearest), where G renders smeared mixtures; the centroid prior moves it onto
        the blend of the centroids it is closest to; `voice_shift` first moves it to where photos' f_id
        lie. Identity when both are off."""
        if self.cfg.voice_shift:
            shift = torch.tensor(self.cfg.voice_shift, dtype=torch.float32, device=f_id.device)
            f_id = F.normalize(F.normalize(f_id.float(), dim=-1) + shift, dim=-1).to(f_id.dtype)
        if self.cfg.centroid_prior <= 0:
            return f_id
        with torch.inference_mode():
            return self.model.centroids.blend(f_id, self.cfg.centroid_prior)

    def _sample_identity(self, f_id: torch.Tensor, seed: int) -> torch.Tensor:
        """A plausible neighbour of the voice's identity estimate: part of the way toward one of the nearest
        centroids (`sample_neighbours`), or a random step of angle ~sample_jitter."""
        gen = torch.Generator().manual_seed(seed)
        k = min(self.cfg.sample_neighbours, self.cfg.num_identities)
        if k > 0:
            with torch.inference_mode():
                near = self.model.centroids.cosine(f_id.float()[None])[0].topk(k).indices
                pick = near[int(torch.randint(0, k, (1,), generator=gen))]
                target = F.normalize(self.model.centroids.weight[pick].float(), dim=-1)
                t = 0.3 + 0.3 * float(torch.rand((), generator=gen))
                return slerp(
                    F.normalize(f_id.float(), dim=-1)[None], target[None], torch.tensor([[t]]).to(self.device)
                )[0]
        return turn(f_id, torch.randn(f_id.shape[-1], generator=gen).to(self.device), self.cfg.sample_jitter)

    def face(
        self,
        voice: Voice,
        pose: str | Path | np.ndarray | None = None,
        seed: int | None = None,
        n_samples: int = 1,
        aligned_pose: bool = False,
    ) -> list[np.ndarray]:
        """Faces (H, W, 3) uint8 for one voice. Sample 0 without a seed is the voice's own estimate;
        other samples (or any with `seed`) step around it and redraw the generator noise."""
        if n_samples < 1:
            raise UsageError(f"--n-samples must be at least 1, not {n_samples}")
        return self.face_from_identity(self.voice_identity(voice), pose, seed, n_samples, aligned_pose)

    def face_from_identity(
        self,
        f_id: torch.Tensor,
        pose: str | Path | np.ndarray | None = None,
        seed: int | None = None,
        n_samples: int = 1,
        aligned_pose: bool = False,
    ) -> list[np.ndarray]:
        """`face` for an identity already estimated (`voice_identity`), e.g. to score it and draw it."""
        f_ir = self.silence_content()
        if pose is not None:
            f_ir = self.model.speak(self.pose_feature(pose, aligned_pose), f_ir)
        f_id = self.drawable_identity(f_id)
        out = []
        for k in range(n_samples):
            sample_seed = (seed + k) if seed is not None else (k if k else None)
            fid = self._sample_identity(f_id, sample_seed) if sample_seed is not None else f_id
            noise = self.model.generator.make_noise(sample_seed or 0, self.device)
            with torch.inference_mode(), self._per_frame():
                img = self.model.generate(fid[None], f_ir[None], noise).float()
            out.append(images.to_uint8(img)[0])
        return out

    def talk_frames(
        self,
        voice: Voice | DecodedVoice,
        pose: str | Path | np.ndarray | None = None,
        fps: float = 25.0,
        batch_size: int | None = None,
        aligned_pose: bool = False,
        seed: int | None = None,
        face: str | Path | np.ndarray | None = None,
        aligned_face: bool = False,
        motion: str = "natural",
    ) -> tuple[int, Iterator[np.ndarray]]:
        """(frame count, lazy iterator of frames): ceil(duration * fps) frames. A `DecodedVoice` is
        read from disk a batch at a time (memory flat in length); a file or array is decoded whole.
        `face`: the identity of this photo instead of the voice's (a real clip re-drawn, for evaluation).
        `motion`: "natural" blinks, glances (eyes.py) and moves the head with the voice (motion.py) around
        the still pose where the weights carry pose entries, unless a pose video drives it; "none": all still."""
        if not (0 < fps <= 120):
            raise UsageError(f"--fps must be between 0 and 120, not {fps}")
        check_motion(motion)
        if isinstance(voice, DecodedVoice):
            src: MelSource = StreamedMel(voice, self.model.mel, self.device)
            samples, speech = voice.samples, voice.speech_probabilities()
        else:
            wave, speech = checked_speech(voice, self.cfg.audio)
            src, samples = MemoryMel(self._mel(wave)), len(wave)
        if face is not None:
            f_id = self.face_identity(face, aligned_face)
        else:
            f_id = self.drawable_identity(
                self.identity_from_mel(src, speech_window_starts(speech, src.frames, self.cfg.audio))
            )
            if seed is not None:
                f_id = self._sample_identity(f_id, seed)
        n_frames = math.ceil(samples / self.cfg.audio.sample_rate * fps - 1e-9)
        if is_video(pose):  # the head follows the video frame by frame
            track = self.pose_track(pose, fps, n_frames)
        else:
            f_pose = self.pose_feature(pose, aligned_pose) if pose is not None else None
            track = None if f_pose is None else f_pose.expand(n_frames, -1)
        head = eyes = None
        if motion == "natural" and not is_video(pose):
            head, eyes = self.head_motion(fps, seed or 0), EyeMotion(fps, seed or 0)
        noise = self.model.generator.make_noise(seed or 0, self.device)
        batch_size = batch_size or FRAME_BATCH.get(self.device.type, 16)

        def frames() -> Iterator[np.ndarray]:
            for start in range(0, n_frames, batch_size):
                stop = min(start + batch_size, n_frames)
                windows = self.content_windows(src, fps, start, stop)
                with torch.inference_mode(), self._per_frame():
                    f_s = self.model.content(windows)
                    base = track[start:stop].to(f_s.dtype) if track is not None else torch.zeros_like(f_s)
                    f_ir = self.model.speak(base, f_s)
                    if head is not None:
                        f_ir = f_ir + head(windows).to(f_ir.dtype)
                    imgs = self.model.generate(f_id.expand(len(f_s), -1), f_ir, noise).float()
                yield from with_eyes(images.to_uint8(imgs), eyes)

        return n_frames, frames()

    def talk(
        self,
        voice: Voice,
        output: str | Path,
        pose: str | Path | np.ndarray | None = None,
        fps: float = 25.0,
        progress: Progress | None = None,
        aligned_pose: bool = False,
        seed: int | None = None,
        on_frames: Callable[[int], None] | None = None,
        motion: str = "natural",
        size: int | None = None,
    ) -> int:
        """Write a lip-synced MP4 with the voice muxed in; returns the number of frames. The voice is
        decoded once to a temporary WAV and streamed from there (any length, flat memory);
        `on_frames` hears the frame count before rendering starts. `size`: the video's side in pixels
        (default the model's), each frame resized (bicubic up, area down)."""
        import tempfile

        from .video import write_mp4

        if not (0 < fps <= 120):
            raise UsageError(f"--fps must be between 0 and 120, not {fps}")
        side = self.cfg.image_size if size is None else size
        if not (16 <= side <= 4096) or side % 2:
            raise UsageError(f"--size must be an even number of pixels between 16 and 4096, not {size}")
        with tempfile.TemporaryDirectory(prefix="s2tf-") as tmpdir:
            decoded = DecodedVoice.open(voice, Path(tmpdir), self.cfg.audio)
            n_frames, frames = self.talk_frames(decoded, pose, fps, aligned_pose=aligned_pose, seed=seed, motion=motion)
            if on_frames:
                on_frames(n_frames)

            def counted() -> Iterator[np.ndarray]:
                for frame in frames:
                    yield images.resize(frame, side)
                    if progress:
                        progress(1)

            with atomic_path(output) as tmp:  # the muxed track is exactly the decoded voice we heard
                meta = provenance(self.weights_label, "talk")
                return write_mp4(tmp, counted(), side, fps, decoded.path, meta)

    def retrieve(
        self,
        voice: Voice,
        gallery: Sequence[str | Path],
        aligned: bool = False,
        progress: Progress | None = None,
        batch_size: int = 32,
        cache: bool = True,
        remember_voice: bool = False,
    ) -> tuple[list[Match], list[Skipped]]:
        """Rank `gallery` images by cosine between the voice's f_id^a and each face's f_id^v. With `cache`
        (and weights with a checksum), each image's f_id^v is kept in a `GalleryIndex` for the next query;
        with `remember_voice` too, the voice file's f_id^a is kept in a `VoiceIndex`, which lets
        `gallery_index.cached_retrieval` answer the same query again without the model (the CLI does)."""
        from .gallery_index import GalleryIndex, VoiceIndex, file_key, rank

        f_id = self.voice_identity(voice).float().cpu().numpy()
        indexed = cache and self.source is not None and bool(self.source.sha256)
        index = GalleryIndex(self.source.sha256, aligned) if indexed else None
        if indexed and remember_voice and isinstance(voice, (str, Path)):
            voices = VoiceIndex(self.source.sha256)
            voices.add(file_key(Path(voice)), f_id)
            voices.save()
        kept: list[Path] = []
        vectors: list[np.ndarray | None] = []  # unit f_id^v per kept image (None until its batch is encoded)
        skipped: list[Skipped] = []
        pending: list[tuple[int, str | None, np.ndarray]] = []  # (slot in kept, content key, crop)

        def flush() -> None:
            if pending:
                batch = torch.stack([images.to_tensor(c) for _, _, c in pending]).to(self.device)
                f_v = self.photo_identities(batch).cpu().numpy()
                for (slot, key, _), v in zip(pending, f_v):
                    vectors[slot] = v
                    if index is not None and key is not None:
                        index.add(key, v)
                pending.clear()

        for path in gallery:
            path = Path(path)
            key = None
            try:
                if index is not None and path.is_file():
                    key = file_key(path)
                    if key in index.vectors:
                        kept.append(path)
                        vectors.append(index.vectors[key])
                        continue
                    if key in index.failures:
                        raise InputError(f"{path}: {index.failures[key]}")
                crop = self._face_crop(path, aligned)
                kept.append(path)
                vectors.append(None)
                pending.append((len(kept) - 1, key, crop))
            except (InputError, UsageError) as exc:
                skipped.append(Skipped(path, str(exc)))
                if index is not None and key is not None and isinstance(exc, InputError):  # decided by the bytes
                    index.fail(key, str(exc).split(": ", 1)[-1])
            finally:
                if progress:
                    progress(1)
            if len(pending) >= batch_size:
                flush()
        flush()
        if index is not None:
            index.save()
        return rank(kept, vectors, f_id), skipped
