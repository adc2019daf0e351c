"""Frame sources and the frame reader: every frame once in order, real-time drops, stalls, bad input, masking.

Clips are written into tmp_path with cv2.VideoWriter (MJPG in AVI: lossless enough that a frame's grey level
tells which frame it is). The recorded videos beside the project are used from where they are.
"""

from __future__ import annotations

import http.server
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo_gism.video import (
    FrameReader,
    FrameSource,
    SourceError,
    SourceNotFound,
    count_frames,
    mask_url,
    open_source,
)

from coded_clips import grey_of, index_of, write_clip

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


class ScriptedSource(FrameSource):
    """A source that yields `n` coded frames, then stalls (blocks) or fails, as told."""

    kind = "scripted"

    def __init__(self, n: int, then: str = "end", block_s: float = 5.0):
        super().__init__("scripted", 25.0, None)
        self.n, self.then, self.block_s, self.i = n, then, block_s, 0
        self.released = threading.Event()

    def read(self):
        if self.i < self.n:
            self.i += 1
            return np.full((32, 32, 3), grey_of(self.i - 1), np.uint8)
        if self.then == "stall":
            self.released.wait(self.block_s)
            return None
        if self.then == "fail":
            raise OSError("device unplugged")
        return None

    def close(self):
        self.released.set()


def read_all(reader: FrameReader, delay_s: float = 0.0) -> list:
    frames = []
    with reader:
        for batch in reader:
            frames += batch
            time.sleep(delay_s)
    return frames


# ---------------------------------------------------------------- credentials


@pytest.mark.parametrize(
    "url, masked",
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/stream1", "rtsp://admin:***@10.0.0.5:554/stream1"),
        ("http://cam:p%40ss@host/video.mjpg?token=abc&res=hd", "http://cam:***@host/video.mjpg?token=***&res=hd"),
        ("rtsp://viewer@host/live", "rtsp://viewer@host/live"),
        ("rtsp://host:8554/live", "rtsp://host:8554/live"),
        ("/videos/clip.mp4", "/videos/clip.mp4"),
    ],
)
def test_mask_url_hides_passwords_and_tokens(url, masked):
    assert mask_url(url) == masked


def test_unreachable_url_fails_fast_with_masked_name():
    with pytest.raises(SourceError) as e:
        open_source("rtsp://admin:s3cret@127.0.0.1:1/stream", timeout_s=1.0)
    assert "admin:***@127.0.0.1:1/stream" in str(e.value)
    assert "s3cret" not in str(e.value)


def test_silent_server_times_out_within_the_url_timeout():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)  # accepts connections (the backlog) and never answers
    port = server.getsockname()[1]
    t0 = time.perf_counter()
    try:
        with pytest.raises(SourceError, match=r"cannot be opened \(timed out"):
            open_source(f"http://user:pw@127.0.0.1:{port}/cam.mjpg", timeout_s=1.0)
    finally:
        server.close()
    assert time.perf_counter() - t0 < 10


# ---------------------------------------------------------------- real videos


def _stated_frame_counts() -> dict[str, int]:
    """file -> frames, from the table in SOURCES.md."""
    counts = {}
    for line in (VIDEOS / "SOURCES.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 2 and cells[0].endswith(".mp4") and cells[1].isdigit():
            counts[cells[0]] = int(cells[1])
    return counts


@pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"shared videos folder absent: {VIDEOS}")
def test_real_videos_decode_with_the_frame_counts_sources_md_states():
    stated = _stated_frame_counts()
    assert len(stated) == 3, stated
    for name, frames in stated.items():
        source = open_source(VIDEOS / name)
        assert source.frame_count == frames, name  # what the container claims ...
        source.close()
        assert count_frames(VIDEOS / name) == frames, name  # ... and what really decodes


@pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"shared videos folder absent: {VIDEOS}")
def test_three_real_videos_at_once_pipelined():
    paths = sorted(VIDEOS.glob("*.mp4"))
    reader = FrameReader(paths, mode="pipelined", max_frames=20)
    frames = read_all(reader)
    assert sorted((f.stream, f.index) for f in frames) == [(s, i) for s in range(len(paths)) for i in range(20)]
    shapes = {f.stream: f.image.shape for f in frames}
    assert {shapes[i][:2] for i in range(len(paths))} == {(432, 768), (540, 960), (720, 1280)}
    assert not any(st.ended_early or st.stalled for st in reader.status)


# ---------------------------------------------------------------- modes


@pytest.mark.parametrize("mode", ["sequential", "pipelined"])
def test_every_frame_once_in_order_with_its_own_pixels(tmp_path, mode):
    clip = write_clip(tmp_path / "coded.avi", n=30)
    reader = FrameReader([clip, clip], mode=mode, batch=3, queue_size=2)
    frames = read_all(reader, delay_s=0.002)  # a consumer slower than decoding: the queue fills and waits
    for stream in (0, 1):
        mine = [f for f in frames if f.stream == stream]
        assert [f.index for f in mine] == list(range(30))
        assert [index_of(f.image) for f in mine] == list(range(30))
    assert all(len(b) == 3 for b in [frames[i : i + 3] for i in range(0, 60, 3)])
    assert [st.frames for st in reader.status] == [30, 30]
    assert not any(st.ended_early or st.stalled or st.dropped for st in reader.status)


def test_realtime_mode_drops_frames_a_slow_consumer_cannot_take(tmp_path):
    clip = write_clip(tmp_path / "fast.avi", n=40, fps=200.0)  # 0.2 s of video
    reader = FrameReader(clip, mode="realtime")
    frames = read_all(reader, delay_s=0.03)  # ~30 ms per frame: about one in six is taken
    status = reader.status[0]
    assert status.dropped > 0
    assert len(frames) + status.dropped == 40  # every frame is either processed or counted as dropped
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    assert all(index_of(f.image) == f.index for f in frames)
    assert indices[-1] == 39  # the newest frame is the one kept


def test_realtime_paces_a_file_at_its_frame_rate(tmp_path):
    clip = write_clip(tmp_path / "slow.avi", n=6, fps=20.0)
    t0 = time.perf_counter()
    frames = read_all(FrameReader(clip, mode="realtime"))
    assert time.perf_counter() - t0 >= 5 / 20.0 * 0.9  # six frames at 20 fps span 0.25 s
    assert [f.index for f in frames] == list(range(6))


def test_frame_limit_is_not_an_early_end(tmp_path):
    clip = write_clip(tmp_path / "c.avi", n=20)
    reader = FrameReader(clip, mode="pipelined", max_frames=7)
    assert [f.index for f in read_all(reader)] == list(range(7))
    assert not reader.status[0].ended_early


def test_image_folder_source(tmp_path):
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((20, 30, 3), grey_of(i), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    frames = read_all(FrameReader(tmp_path, mode="sequential"))
    assert [index_of(f.image) for f in frames] == list(range(5))


# ---------------------------------------------------------------- streams that end or stall mid-run


def test_truncated_file_is_reported_as_ended_early(tmp_path):
    clip = write_clip(tmp_path / "full.avi", n=30)
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 3 // 4])
    reader = FrameReader(cut, mode="pipelined")
    frames = read_all(reader)
    assert 0 < len(frames) < 30
    assert reader.status[0].ended_early and not reader.status[0].stalled


def test_stalled_source_is_reported_and_frames_so_far_kept():
    source = ScriptedSource(4, then="stall")
    reader = FrameReader(source, mode="pipelined", stall_timeout=0.3)
    t0 = time.perf_counter()
    frames = read_all(reader)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert reader.status[0].stalled
    assert time.perf_counter() - t0 < 4.0  # the reader gave up after the stall timeout, not after the source


def test_read_error_mid_stream_is_reported(tmp_path):
    reader = FrameReader(ScriptedSource(3, then="fail"), mode="pipelined")
    frames = read_all(reader)
    assert len(frames) == 3
    status = reader.status[0]
    assert status.ended_early and "device unplugged" in status.error


class _HalfThenSilent(http.server.BaseHTTPRequestHandler):
    """Serves half of a clip, then holds the connection open without sending more: a camera that froze."""

    payload = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "video/x-msvideo")
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload[: len(self.payload) // 2])
        self.wfile.flush()
        time.sleep(3)

    def log_message(self, *args):
        pass


@pytest.fixture
def freezing_server(tmp_path):
    handler = type("Handler", (_HalfThenSilent,), {"payload": write_clip(tmp_path / "s.avi", n=30).read_bytes()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://user:pw@127.0.0.1:{server.server_address[1]}/s.avi"
    server.shutdown()
    server.server_close()


def test_url_stream_that_freezes_mid_run(freezing_server):
    reader = FrameReader(freezing_server, mode="pipelined", stall_timeout=0.4, url_timeout=1.5)
    frames = read_all(reader)
    assert 0 < len(frames) < 30
    assert [f.index for f in frames] == list(range(len(frames)))
    assert reader.status[0].stalled
    assert reader.describe()[0]["name"].startswith("http://user:***@127.0.0.1:")


def test_url_stream_that_freezes_in_sequential_mode_ends_early(freezing_server):
    reader = FrameReader(freezing_server, mode="sequential", url_timeout=0.8)
    frames = read_all(reader)
    assert 0 < len(frames) < 30
    assert reader.status[0].ended_early


# ---------------------------------------------------------------- bad input


def test_missing_file_names_it(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceNotFound, match=re.escape(str(missing))):
        open_source(missing)
    with pytest.raises(FileNotFoundError):  # SourceNotFound is also a FileNotFoundError
        FrameReader(missing)


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 500])
def test_unreadable_file_names_it(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(SourceError, match=re.escape(str(bad))):
        open_source(bad)


def test_zero_frame_video_names_it(tmp_path):
    path = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    writer.release()
    with pytest.raises(SourceError, match=re.escape(str(path))):
        open_source(path)


def test_empty_folder_names_it(tmp_path):
    with pytest.raises(SourceError, match="holds no images"):
        open_source(tmp_path)


def test_missing_camera_names_it():
    with pytest.raises(SourceError, match="camera 97"):
        open_source(97)


def test_one_bad_source_among_several_closes_the_others(tmp_path):
    clip = write_clip(tmp_path / "ok.avi", n=5)
    with pytest.raises(SourceNotFound, match="missing.avi"):
        FrameReader([clip, tmp_path / "missing.avi"])


def test_bad_mode_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="sequential, pipelined, realtime"):
        FrameReader(write_clip(tmp_path / "c.avi", n=2), mode="fast")


def test_video_module_does_not_import_torch():
    code = "import sys, yolo_gism.video; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
