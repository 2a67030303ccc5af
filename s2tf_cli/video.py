"""MP4 writing: H.264 yuv420p frames with the voice muxed as AAC, through imageio-ffmpeg."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np


def write_mp4(
    path: Path,
    frames: Iterable[np.ndarray],
    size: int,
    fps: float,
    audio_wav: Path | None,
    metadata: dict[str, str],
) -> int:
    """Encode (H, W, 3) uint8 frames as they arrive (encoding overlaps generation); returns the count."""
    import imageio_ffmpeg

    # one encoder thread: a 128-px H.264 stream needs little, and torch's threads keep the cores
    params = ["-threads", "1", "-movflags", "+faststart+use_metadata_tags", "-f", "mp4"]
    for key, value in metadata.items():
        params += ["-metadata", f"{key.replace(':', '_').lower()}={value}"]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (size, size),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=8,
        macro_block_size=2,
        ffmpeg_log_level="error",
        output_params=params,
        audio_path=str(audio_wav) if audio_wav else None,
        audio_codec="aac" if audio_wav else None,
    )
    writer.send(None)  # start ffmpeg
    count = 0
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
            count += 1
    finally:
        writer.close()
    return count


class FragmentedMP4:
    """A fragmented MP4 (H.264 + AAC) written to a byte sink as frames and audio arrive: `s2tf talk -
    --stream --format mp4`. ffmpeg reads the frames on its stdin and the PCM on a second pipe; one thread
    feeds each and one copies what it writes to `sink`, so neither input can block the other. Fragments of
    0.2 s and x264's zero-latency tuning keep what a player sees close behind the voice."""

    def __init__(self, sink, size: int, fps: float, sample_rate: int, metadata: dict[str, str]):
        import os
        import queue
        import subprocess
        import threading

        import imageio_ffmpeg

        self.sink = sink
        read_audio, self._audio_fd = os.pipe()
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}", "-r", f"{fps:g}", "-i", "pipe:0",
               "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", f"pipe:{read_audio}",
               "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
               "-threads", "1", "-c:a", "aac", "-b:a", "64k",
               "-movflags", "empty_moov+default_base_moof+frag_keyframe+use_metadata_tags",
               "-frag_duration", "200000"]  # fmt: skip
        for key, value in metadata.items():
            cmd += ["-metadata", f"{key.replace(':', '_').lower()}={value}"]
        cmd += ["-f", "mp4", "pipe:1"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     pass_fds=(read_audio,))  # fmt: skip
        os.close(read_audio)
        self._queues = {"video": queue.Queue(), "audio": queue.Queue()}
        sinks = {"video": self.proc.stdin, "audio": os.fdopen(self._audio_fd, "wb", buffering=0)}
        self._threads = [threading.Thread(target=self._feed, args=(self._queues[k], sinks[k]), daemon=True)
                         for k in ("video", "audio")] + [threading.Thread(target=self._copy, daemon=True)]  # fmt: skip
        for t in self._threads:
            t.start()

    def _feed(self, q, pipe) -> None:
        try:
            while (data := q.get()) is not None:
                pipe.write(data)
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    def _copy(self) -> None:
        while data := self.proc.stdout.read1(65536):
            self.sink.write(data)
            self.sink.flush()

    def audio(self, pcm16: bytes) -> None:
        self._queues["audio"].put(pcm16)

    def frame(self, frame: np.ndarray) -> None:
        self._queues["video"].put(np.ascontiguousarray(frame).tobytes())

    def close(self) -> None:
        """Ends both inputs, waits for ffmpeg to write the last fragment; a failed encode raises."""
        for q in self._queues.values():
            q.put(None)
        for t in self._threads:
            t.join()
        err = self.proc.stderr.read().decode(errors="replace").strip()
        if self.proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed to write the stream: {err.splitlines()[-1] if err else 'no message'}")
