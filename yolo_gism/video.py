"""Frame sources for the frame-rate harness: video files, image folders, RTSP/HTTP URLs and cameras.

Torch-free on purpose (edge devices read frames too). A ``FrameReader`` turns one or more sources into
batches of ``Frame`` objects in one of three modes:

- ``sequential``: frames are decoded in the caller's thread, one after the other with the model;
- ``pipelined``: one decoding thread per source feeds a bounded queue, so decoding overlaps inference;
- ``realtime``: a file is paced at its own frame rate and only the newest frame is kept, as a live
  camera would; frames the consumer is too slow to take are dropped and counted.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import cv2
import numpy as np

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".ts", ".asf", ".gif"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
MODES = ("sequential", "pipelined", "realtime")
_SECRET_KEYS = {"password", "passwd", "pass", "pwd", "token", "access_token", "key", "apikey", "api_key", "secret",
                "auth", "signature", "sig"}


class SourceError(ValueError):
    """A source that cannot be opened or read; the message always names the (masked) source."""


class SourceNotFound(SourceError, FileNotFoundError):
    """A file or folder source that does not exist."""


def mask_url(text: str) -> str:
    """Hide passwords and secret query values in a URL (``rtsp://user:***@host/...``) so results can be shared."""
    text = str(text)
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", text)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() in _SECRET_KEYS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass
class Frame:
    """One decoded frame and when it came into existence, so latency can be measured from capture."""

    stream: int  # which source of the reader it came from
    index: int  # position in its source (0-based; counts frames skipped in real-time mode)
    image: np.ndarray  # BGR uint8, H x W x 3
    t_start: float  # time.perf_counter() when decoding of this frame began
    decode_s: float  # seconds spent decoding it


class FrameSource:
    """A readable source of BGR frames. Subclasses set ``kind``, ``name``, ``fps``, ``frame_count``, ``live``."""

    kind = "source"
    live = False  # a live source (camera, URL) cannot be paced or rewound, and its end is never expected

    def __init__(self, name: str, fps: float | None = None, frame_count: int | None = None):
        self.name, self.fps, self.frame_count = name, fps, frame_count

    def read(self) -> np.ndarray | None:
        """Return the next frame, or None at the end of the source."""
        raise NotImplementedError

    def take_predecoded_s(self) -> float:
        """Seconds spent ahead of time decoding the frame read() just returned (the first frame, read at open)."""
        return 0.0

    def skip(self) -> bool:
        """Advance one frame without needing its pixels; False at the end."""
        return self.read() is not None

    def close(self) -> None:
        """Release whatever the source holds."""

    def describe(self) -> dict:
        """What a result records about the source (never a password)."""
        return {"name": self.name, "kind": self.kind, "fps": self.fps, "frame_count": self.frame_count}


class CaptureSource(FrameSource):
    """A cv2.VideoCapture source; the first frame is decoded at open so that bad codecs and empty files fail early."""

    def __init__(self, cap: cv2.VideoCapture, name: str, kind: str, live: bool):
        fps = cap.get(cv2.CAP_PROP_FPS)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        super().__init__(name, fps if 0 < fps < 1000 else None, count if count > 0 and not live else None)
        self.kind, self.live, self.cap = kind, live, cap
        t0 = time.perf_counter()
        ok, frame = cap.read()
        self._pending_s = time.perf_counter() - t0  # decode time of the first frame, read at open
        if not ok or frame is None:
            cap.release()
            raise SourceError(f"{kind} source '{name}' opened but yielded no frames "
                              "(empty, or a codec OpenCV cannot decode)")
        self._pending = frame

    def read(self) -> np.ndarray | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        ok, frame = self.cap.read()
        return frame if ok else None

    def skip(self) -> bool:
        if self._pending is not None:
            self._pending, self._pending_s = None, 0.0
            return True
        return bool(self.cap.grab())

    def take_predecoded_s(self) -> float:
        seconds, self._pending_s = self._pending_s, 0.0
        return seconds

    def close(self) -> None:
        self.cap.release()


class ImageFolderSource(FrameSource):
    """The images of a folder in name order, read one at a time."""

    kind = "folder"

    def __init__(self, folder: Path, fps: float | None = None):
        self.files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"image folder '{folder}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        super().__init__(str(folder), fps, len(self.files))
        self._next = 0

    def read(self) -> np.ndarray | None:
        if self._next >= len(self.files):
            return None
        path = self.files[self._next]
        self._next += 1
        image = cv2.imread(str(path))
        if image is None:
            raise SourceError(f"image '{path}' in folder '{self.name}' cannot be read")
        return image

    def skip(self) -> bool:
        self._next += 1
        return self._next <= len(self.files)


def _capture(target, timeout_s: float | None = None) -> cv2.VideoCapture:
    """Open a VideoCapture, with open/read timeouts for network streams so a dead URL fails fast."""
    if timeout_s is None:
        return cv2.VideoCapture(target)
    ms = int(timeout_s * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)


def open_video(path: str | Path) -> CaptureSource:
    """Open a video file; a missing file, an unreadable codec or zero frames raise an error naming it."""
    path = Path(path)
    if not path.exists():
        raise SourceNotFound(f"video file '{path}' does not exist")
    if path.stat().st_size == 0:
        raise SourceError(f"video file '{path}' is empty (0 bytes)")
    cap = _capture(str(path))
    if not cap.isOpened():
        raise SourceError(f"video file '{path}' cannot be opened (not a video, truncated, or a codec OpenCV lacks)")
    return CaptureSource(cap, str(path), "file", live=False)


def open_url(url: str, timeout_s: float = 5.0) -> CaptureSource:
    """Open an RTSP/HTTP stream with short timeouts; errors and results carry the URL with credentials masked."""
    name = mask_url(url)
    t0 = time.perf_counter()
    cap = _capture(url, timeout_s)
    if not cap.isOpened():
        waited = time.perf_counter() - t0
        why = "timed out" if waited >= 0.9 * timeout_s else "unreachable or refused"
        raise SourceError(f"stream '{name}' cannot be opened ({why} after {waited:.1f} s, timeout {timeout_s:g} s)")
    live = cap.get(cv2.CAP_PROP_FRAME_COUNT) <= 0  # a file served over HTTP knows its length; a live stream does not
    return CaptureSource(cap, name, "url", live=live)


def open_camera(index: int) -> CaptureSource:
    """Open a local camera by index."""
    cap = _capture(int(index))
    if not cap.isOpened():
        raise SourceError(f"camera {index} cannot be opened (no such device, or it is busy)")
    return CaptureSource(cap, f"camera:{index}", "camera", live=True)


def open_source(spec, timeout_s: float = 5.0, fps: float | None = None) -> FrameSource:
    """Open a source from what a user types: a camera index, a URL, a folder of images or a video file.

    A FrameSource instance is returned as it is, so callers (and tests) can bring their own.
    """
    if isinstance(spec, FrameSource):
        return spec
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return open_camera(int(spec))
    text = str(spec)
    if text.lower().startswith(URL_SCHEMES):
        return open_url(text, timeout_s)
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, fps)
    if path.exists() and path.suffix.lower() in IMAGE_SUFFIXES:
        raise SourceError(f"'{path}' is a single image; give its folder to measure a sequence of frames")
    return open_video(path)


@dataclass
class StreamStatus:
    """How one stream of a reader went: what a result reports next to its timings."""

    stream: int
    name: str
    kind: str
    frames: int = 0  # frames handed to the consumer
    dropped: int = 0  # frames decoded or due but never handed over (real-time mode)
    ended_early: bool = False  # the source ended before its stated length (or a live source ended at all)
    stalled: bool = False  # no frame arrived within the stall timeout
    error: str | None = None  # what a read raised, if anything

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class _Stalled(Exception):
    """No frame arrived in time."""


class _Feed:
    """One stream's frames, decoded in the caller's thread (sequential mode)."""

    def __init__(self, source: FrameSource, stream: int, max_frames: int | None):
        self.source, self.stream, self.max_frames = source, stream, max_frames
        self.status = StreamStatus(stream, source.name, source.kind)
        self.position = 0  # next frame position in the source, skipped frames included
        self.limit_reached = False
        self.thread: threading.Thread | None = None

    def decode(self) -> Frame | None:
        """Decode the next frame here and time it; None at the end of the source or the frame limit."""
        if self.max_frames is not None and self.position >= self.max_frames:
            self.limit_reached = True
            return None
        t0 = time.perf_counter()
        image = self.source.read()
        dt = time.perf_counter() - t0
        if image is None:
            return None
        ahead = self.source.take_predecoded_s()  # the first frame of a capture is decoded when it opens
        frame = Frame(self.stream, self.position, image, t0 - ahead, dt + ahead)
        self.position += 1
        return frame

    def mark_end(self, error: BaseException | None = None, stopped: bool = False) -> None:
        """Decide whether the stream ended early: an error, a live source ending, or fewer frames than stated.

        Reaching the frame limit, or being stopped by the reader, is not an early end.
        """
        if error is not None:
            self.status.error = f"{type(error).__name__}: {error}"
        short = self.source.frame_count is not None and self.position < self.source.frame_count
        if not (self.limit_reached or stopped) and (error is not None or self.source.live or short):
            self.status.ended_early = True

    def start(self) -> None:
        """Nothing to start: frames are decoded on demand."""

    def stop(self) -> None:
        """Nothing runs in the background."""

    def get(self, timeout: float) -> Frame | None:
        try:
            frame = self.decode()
        except Exception as e:  # a read error ends this stream; frames so far are kept
            self.mark_end(e)
            return None
        if frame is None:
            self.mark_end()
        return frame


class _ThreadFeed(_Feed):
    """A decoding thread per stream feeding a bounded queue (pipelined mode): every frame, in order, once."""

    _END = object()

    def __init__(self, source: FrameSource, stream: int, max_frames: int | None, queue_size: int = 8):
        super().__init__(source, stream, max_frames)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"decode-{self.stream}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        error = None
        try:
            while not self._stop.is_set():
                frame = self.decode()
                if frame is None:
                    break
                self._hand_over(frame)
        except Exception as e:  # reported through the stream status, never lost in a thread
            error = e
        self.mark_end(error, stopped=self._stop.is_set())
        self._hand_over(self._END)

    def _hand_over(self, item) -> None:
        """Put into the queue, waiting while it is full, unless the reader is being closed."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def get(self, timeout: float) -> Frame | None:
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise _Stalled from None
        return None if item is self._END else item


class _LatestFeed(_ThreadFeed):
    """Real-time mode: a file is paced at its frame rate and only the newest frame is kept, like a live camera."""

    def __init__(self, source: FrameSource, stream: int, max_frames: int | None, fps: float | None):
        super().__init__(source, stream, max_frames)
        self.period = 0.0 if source.live or not fps else 1.0 / fps
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._ended = False

    def _run(self) -> None:
        error, t0 = None, time.perf_counter()
        try:
            while not self._stop.is_set():
                if self.period and not self._keep_pace(t0):
                    continue
                frame = self.decode()
                if frame is None:
                    break
                self._publish(frame)
        except Exception as e:
            error = e
        self.mark_end(error, stopped=self._stop.is_set())
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _keep_pace(self, t0: float) -> bool:
        """Wait until the next frame is due; skip it (a drop) when more than one period behind. True: decode it."""
        due = t0 + self.position * self.period
        now = time.perf_counter()
        if now < due:
            self._stop.wait(due - now)
            return True
        if now - due <= self.period:
            return True
        if self.max_frames is not None and self.position >= self.max_frames:
            return True  # decode() notes the limit and ends the stream
        if not self.source.skip():
            return True  # decode() finds the end of the source
        self.position += 1
        self.status.dropped += 1
        return False

    def _publish(self, frame: Frame) -> None:
        with self._cond:
            if self._slot is not None:
                self.status.dropped += 1
            self._slot = frame
            self._cond.notify_all()

    def get(self, timeout: float) -> Frame | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._slot is not None or self._ended, timeout):
                raise _Stalled
            frame, self._slot = self._slot, None
            return frame


def _open_all(specs, timeout_s: float, fps: float | None) -> list[FrameSource]:
    """Open every source or none: on a failure the ones already open are closed before the error propagates."""
    opened: list[FrameSource] = []
    try:
        for spec in specs:
            opened.append(open_source(spec, timeout_s, fps))
    except BaseException:
        for source in opened:
            source.close()
        raise
    return opened


class FrameReader:
    """Batches of frames from one or more sources, decoded sequentially, pipelined or in real time.

    Batches take frames round-robin from the streams still running, so with N streams and batch N every
    batch holds one frame per stream. Iterate it once; ``status`` then says how each stream went.
    """

    def __init__(self, sources, mode: str = "pipelined", batch: int | None = None, max_frames: int | None = None,
                 queue_size: int = 8, stall_timeout: float = 10.0, url_timeout: float = 5.0,
                 source_fps: float | None = None):
        if mode not in MODES:
            raise ValueError(f"mode='{mode}' is not one of {', '.join(MODES)}")
        sources = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        if not sources:
            raise ValueError("FrameReader needs at least one source")
        self.mode, self.stall_timeout = mode, stall_timeout
        self.sources = _open_all(sources, url_timeout, source_fps)
        self.batch = int(batch or len(self.sources))
        self.feeds = [self._feed(s, i, max_frames, queue_size, source_fps) for i, s in enumerate(self.sources)]
        self.t_start: float | None = None

    def _feed(self, source: FrameSource, stream: int, max_frames, queue_size: int, source_fps) -> _Feed:
        if self.mode == "sequential":
            return _Feed(source, stream, max_frames)
        if self.mode == "pipelined":
            return _ThreadFeed(source, stream, max_frames, queue_size)
        return _LatestFeed(source, stream, max_frames, source_fps or source.fps or 30.0)

    @property
    def status(self) -> list[StreamStatus]:
        return [feed.status for feed in self.feeds]

    def describe(self) -> list[dict]:
        return [source.describe() for source in self.sources]

    def __iter__(self):
        if self.t_start is not None:
            raise RuntimeError("a FrameReader is iterated once; make a new one to read again")
        self.t_start = time.perf_counter()
        for feed in self.feeds:
            feed.start()
        active, turn = list(self.feeds), 0
        while active:
            batch: list[Frame] = []
            while len(batch) < self.batch and active:
                turn %= len(active)
                frame = self._next(active[turn])
                if frame is None:
                    active.pop(turn)
                else:
                    batch.append(frame)
                    turn += 1
            if batch:
                yield batch

    def _next(self, feed: _Feed) -> Frame | None:
        try:
            frame = feed.get(self.stall_timeout)
        except _Stalled:
            feed.status.stalled = True
            return None
        if frame is not None:
            feed.status.frames += 1
        return frame

    def close(self) -> None:
        """Stop the decoding threads and release the sources (a thread stuck in a read is left to die with us)."""
        for feed in self.feeds:
            feed.stop()
        for feed in self.feeds:
            if feed.thread is not None:
                feed.thread.join(timeout=1.0)
            if feed.thread is None or not feed.thread.is_alive():
                feed.source.close()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def count_frames(spec, timeout_s: float = 5.0) -> int:
    """Decode a source to its end and count the frames (checks that a file really holds what it claims)."""
    source = open_source(spec, timeout_s)
    try:
        n = 0
        while source.read() is not None:
            n += 1
        return n
    finally:
        source.close()
