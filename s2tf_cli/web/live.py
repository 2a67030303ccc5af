"""The Live tab's WebSocket, `/api/live`: the microphone in, the face talking out, as it comes.

Protocol (one session per connection):
- page -> server, text: `{"start": {"sample_rate": 48000, "seed": null, "pose": "data:image/...;base64,..."}}`
  first; then binary messages of mono 16-bit little-endian PCM at that rate (any size); `{"ack": index}`
  as each frame is shown; `{"stop": true}` to end.
- server -> page, text: `{"ready": {...}}` or `{"error": "..."}`, and `{"end": {...}}` last; binary: one
  frame each, a 12-byte header (uint32 frame index, float64 its time in the stream, seconds) then a JPEG.

One live session at a time per model (the generator is the scarce thing): a second page is told "busy"
and the socket closes (1013, try again later). A page that shows frames slower than they come never
queues them: at most `IN_FLIGHT` frames are unacknowledged, and while that many are, each new frame
replaces the one waiting (the older is dropped and counted). Audio is live too: a client that sends it
faster than it is spoken (over BACKLOG_MAX_S waiting for the talker) is told so and closed, so no backlog
grows in memory. Nothing is stored: audio lives in the
talker's few-second buffer, frames only until they are sent, and the pose image is deleted once read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import struct
import threading
from dataclasses import dataclass

import numpy as np

from ..live import PCMResampler

IN_FLIGHT = 3  # frames sent and not yet acknowledged, at most
STEP_MAX_S = 1.0  # audio one talker step takes at most (a late step catches up in a few)
BACKLOG_MAX_S = 5.0  # audio waiting for its step at most: more means it arrives faster than it is spoken
HEADER = struct.Struct("<Id")  # frame index, frame time (s)
MIN_RATE, MAX_RATE = 8000, 96000
DATA_URL = re.compile(r"^data:image/[a-z0-9.+-]+;base64,(?P<data>[A-Za-z0-9+/=\s]+)$")
BUSY = "busy: another live session is running on this server; try again when it ends"
BEHIND = (f"live: audio arrives faster than it is spoken (over {BACKLOG_MAX_S:g} s waiting); send it as it is "
          "recorded")  # fmt: skip


class LiveGate:
    """At most one live session per model."""

    def __init__(self):
        self._lock = threading.Lock()

    def enter(self) -> bool:
        return self._lock.acquire(blocking=False)

    def leave(self) -> None:
        self._lock.release()

    @property
    def busy(self) -> bool:
        return self._lock.locked()


@dataclass
class LiveStart:
    sample_rate: int
    seed: int | None
    pose: bytes | None


def parse_start(message: dict, max_pose_bytes: int) -> LiveStart:
    """The page's first message, checked; a bad one is a one-line UsageError."""
    from ..errors import UsageError

    start = message.get("start") if isinstance(message, dict) else None
    if not isinstance(start, dict):
        raise UsageError('live: the first message must be {"start": {"sample_rate": ...}}')
    rate = start.get("sample_rate")
    if not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise UsageError(f"live: sample_rate must be a whole number of Hz in {MIN_RATE}-{MAX_RATE}, not {rate!r}")
    seed = start.get("seed")
    if seed is not None and not isinstance(seed, int):
        raise UsageError(f"live: seed must be a whole number or null, not {seed!r}")
    pose = None
    if start.get("pose"):
        match = DATA_URL.match(str(start["pose"]))
        if not match:
            raise UsageError("live: pose must be an image data URL (data:image/...;base64,...)")
        try:
            pose = base64.b64decode(match["data"], validate=False)
        except (binascii.Error, ValueError):
            raise UsageError("live: pose is not valid base64") from None
        if len(pose) > max_pose_bytes:
            raise UsageError(f"live: pose image is larger than the {max_pose_bytes / 1e6:g} MB limit")
    return LiveStart(rate, seed, pose)


def encode_frame(index: int, seconds: float, frame: np.ndarray, quality: int = 88) -> bytes:
    import cv2

    ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - cv2 encodes any uint8 HxWx3
        raise RuntimeError("JPEG encoding failed")
    return HEADER.pack(index, seconds) + jpeg.tobytes()


class FrameOutbox:
    """Frames waiting to go: at most IN_FLIGHT unacknowledged; past that, only the newest waits (the
    frames a stream's end completes all wait: there are a few, and they are the last)."""

    def __init__(self, in_flight: int = IN_FLIGHT):
        self.in_flight = in_flight
        self.sent_unacked: set[int] = set()
        self.waiting: list[tuple[int, bytes]] = []
        self.sent = self.dropped = 0
        self.changed = asyncio.Event()

    def put(self, index: int, payload: bytes, last: bool = False) -> None:
        if not last and self.waiting:
            self.dropped += len(self.waiting)
            self.waiting = []
        self.waiting.append((index, payload))
        self.changed.set()

    def ack(self, index) -> None:
        if isinstance(index, int):
            self.sent_unacked = {i for i in self.sent_unacked if i > index}
            self.changed.set()

    def take(self, force: bool = False) -> tuple[int, bytes] | None:
        """The next waiting frame if it may go now (`force`: the stream has ended, what waits goes)."""
        if not self.waiting or (len(self.sent_unacked) >= self.in_flight and not force):
            return None
        index, payload = self.waiting.pop(0)
        self.sent_unacked.add(index)
        self.sent += 1
        return index, payload


async def run_live(ws, model, gate: LiveGate, max_pose_bytes: int, files) -> None:
    """One live session on an accepted WebSocket; returns when the page stops or goes away. `files` is the
    server's upload folder (`save_upload`, `discard`, and `message`, which names uploads as the user did)."""
    from starlette.websockets import WebSocketDisconnect

    from ..errors import S2TFError
    from ..live import LiveTalker

    if not gate.enter():
        await ws.send_json({"error": BUSY})
        await ws.close(code=1013)
        return
    loop = asyncio.get_running_loop()
    outbox = FrameOutbox()
    done = asyncio.Event()

    async def sender() -> None:
        while True:
            outbox.changed.clear()
            item = outbox.take(force=done.is_set())
            if item is not None:
                await ws.send_bytes(item[1])
            elif done.is_set():
                return
            else:
                await outbox.changed.wait()

    send_task = None
    try:
        pose_path = None
        try:
            start = parse_start(await ws.receive_json(), max_pose_bytes)
            if start.pose is not None:
                pose_path = files.save_upload(start.pose, "pose image", "pose image")
            talker = await loop.run_in_executor(
                None, lambda: LiveTalker(model, fps=25.0, pose=pose_path, seed=start.seed)
            )
        except S2TFError as exc:
            await ws.send_json({"error": files.message(exc)})
            await ws.close(code=1003)
            return
        finally:
            if pose_path is not None:
                files.discard(pose_path)
        resample = PCMResampler(start.sample_rate, model.cfg.audio.sample_rate)
        await ws.send_json({"ready": {"fps": talker.fps, "size": model.cfg.image_size, "in_flight": outbox.in_flight,
                                      "lookahead_ms": round(1000 * talker.lookahead_s, 1)}})  # fmt: skip
        send_task = asyncio.create_task(sender())
        count = 0

        def step(data: bytes, last: bool = False) -> list[tuple[int, bytes, bool]]:
            """Runs in a worker thread: push the audio, encode the frames it completes (flagged when the
            stream's end completed them)."""
            nonlocal count
            frames = [(f, False) for f in talker.push(resample(data, last=last))]
            if last:
                frames += [(f, True) for f in talker.close()]
            out = []
            for frame, closing in frames:
                out.append((count, encode_frame(count, (count + 0.5) / talker.fps, frame), closing))
                count += 1
            return out

        pending, heard, stopping = bytearray(), asyncio.Event(), False

        most = STEP_MAX_S * start.sample_rate * 2  # bytes of PCM one step takes at most

        async def compute() -> None:
            """Steps the talker on the audio that came since its last step (up to STEP_MAX_S a step), so a
            late step catches up in one go; acknowledgements meanwhile are read at once, never queued behind
            audio."""
            while True:
                await heard.wait()
                heard.clear()
                take = len(pending) if stopping else min(len(pending), int(most))
                data, last = bytes(pending[:take]), stopping
                del pending[:take]
                if pending and not last:
                    heard.set()  # more waits: the next step takes it
                for index, payload, closing in await loop.run_in_executor(None, step, data, last):
                    outbox.put(index, payload, last=closing)
                if last:
                    return

        compute_task = asyncio.create_task(compute())
        while not stopping:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                compute_task.cancel()
                raise WebSocketDisconnect(message.get("code", 1000))
            if message.get("bytes") is not None:
                pending.extend(message["bytes"])
                heard.set()
                if len(pending) > BACKLOG_MAX_S * start.sample_rate * 2:
                    compute_task.cancel()
                    await ws.send_json({"error": BEHIND})
                    await ws.close(code=1008)
                    return
                continue
            command = _json(message.get("text") or "")
            if "ack" in command:
                outbox.ack(command["ack"])
            elif command.get("stop"):  # unknown commands are ignored: a newer page may send more
                stopping = True
                heard.set()
        await compute_task
        done.set()
        outbox.changed.set()
        await send_task
        await ws.send_json({"end": {"frames": count, "sent": outbox.sent, "dropped": outbox.dropped}})
        await ws.close()
    except WebSocketDisconnect:
        pass
    finally:
        done.set()
        outbox.changed.set()
        if send_task is not None and not send_task.done():
            send_task.cancel()
        gate.leave()


def _json(text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
