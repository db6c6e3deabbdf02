"""Image and video files in and out of inference (tools/infer.py): input discovery with collision-free
output names, frame-by-frame video reading and writing (OpenCV), YOLO-style text predictions."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

import cv2
import numpy as np

# FFmpeg's own log lines ("moov atom not found") would repeat, unprompted, what read_frames says in one
# line naming the file; a user's setting wins
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv"}
# Codecs this OpenCV (FFmpeg) build both writes and reads back; H.264 encoders are often missing.
VIDEO_CODECS = {".avi": "MJPG", ".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v"}


@dataclass(frozen=True)
class InputFile:
    path: Path
    name: PurePosixPath   # output name without suffix: the sub-path below a given folder, else the stem

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_SUFFIXES


def collect_inputs(paths: list[str]) -> list[InputFile]:
    """Files as given, and image / video files below folders (recursively, sorted). A folder's files
    keep their sub-path in the output name (a/x.jpg and b/x.jpg -> a/x, b/x); two inputs that would
    still share an output name are an error, before anything is processed."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
            media = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            found += [InputFile(p, PurePosixPath(p.relative_to(path).with_suffix("").as_posix())) for p in media]
        elif path.exists():
            found.append(InputFile(path, PurePosixPath(path.stem)))
        else:
            raise FileNotFoundError(f"--input {path} does not exist")
    _check_unique(found)
    return found


def _check_unique(files: list[InputFile]) -> None:
    owner: dict[tuple[PurePosixPath, bool], Path] = {}
    for item in files:
        key = (item.name, item.is_video)  # x.jpg and x.mp4 give x.jpg and x.mp4: no clash
        if key in owner and owner[key] != item.path:
            raise ValueError(f"--input {owner[key]} and {item.path} would both be written as '{item.name}'; "
                             "pass their parent folder instead (outputs keep sub-folders) or rename one")
        owner[key] = item.path


def read_frames(path: Path) -> tuple[Iterator[np.ndarray], float, int]:
    """(RGB uint8 frames, frames per second, the container's frame count: an estimate for some codecs)."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: OpenCV cannot open this video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0  # some containers store none
    count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)  # 0: unknown

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return frames(), fps, count


class VideoSink:
    """Writes RGB frames to ``path`` at ``fps``, opened on the first frame (its size)."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps, self.frames = path, fps, 0
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            codec = VIDEO_CODECS.get(self.path.suffix.lower(), "mp4v")
            size = (frame.shape[1], frame.shape[0])
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), self.fps, size)
            if not self._writer.isOpened():
                raise ValueError(f"{self.path}: OpenCV cannot write {codec} video here")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def yolo_lines(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, hw: tuple[int, int]) -> list[str]:
    """``class cx cy w h score`` per detection, box values normalised by the image width / height."""
    h, w = hw
    lines = []
    for (x1, y1, x2, y2), score, label in zip(np.asarray(boxes, np.float64).reshape(-1, 4), scores, labels):
        values = ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h, float(score))
        lines.append(" ".join([str(int(label)), *(f"{v:.6f}" for v in values)]))
    return lines
