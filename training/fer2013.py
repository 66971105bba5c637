"""Load FER2013 from the Kaggle CSV (.csv / .csv.gz) or the Kaggle image-folder layout.

Every bad record is reported with its line or file. With ``skip_bad`` the load
skips and counts them; otherwise it stops at the first with that message. The
parsed CSV is cached as a .npz keyed by the file's identity, so the 35,887-row
CSV is parsed once and then loads in well under a second.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from emotion_edge.device.atomic import replacing
from emotion_edge.device.contract import EMOTIONS, INPUT_SIZE, resize_face, to_gray
from emotion_edge.device.errors import EmotionEdgeError

log = logging.getLogger(__name__)

PIXELS = INPUT_SIZE * INPUT_SIZE
# Kaggle's Usage names, mapped to the split names used everywhere else.
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SPLIT_NAMES = ("train", "val", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".tif", ".tiff"}
# Bumped when parsing changes, so stale caches are never read.
CACHE_FORMAT = "fer2013-cache-v1"


class DataError(EmotionEdgeError, ValueError):
    """The data set could not be loaded; the message says where and why."""


@dataclass(frozen=True)
class BadRecord:
    where: str  # "fer2013.csv line 17" or a file path
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class FaceData:
    """Faces as uint8 (N, 48, 48), labels as indices into EMOTIONS, split name per face."""

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    source: str
    skipped: list[BadRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def counts(self) -> dict[str, dict[str, int]]:
        """Per split, per emotion counts: what a researcher checks first."""
        out: dict[str, dict[str, int]] = {}
        for split in np.unique(self.splits):
            mask = self.splits == split
            out[str(split)] = {
                EMOTIONS[k]: int(n) for k, n in zip(*np.unique(self.labels[mask], return_counts=True))
            }
        return out


def _fail_or_skip(bad: BadRecord, skipped: list[BadRecord], skip_bad: bool) -> None:
    if not skip_bad:
        raise DataError(f"{bad}. Fix the record, or pass --skip-bad to skip and count bad records.")
    skipped.append(bad)


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _parse_label(text: str) -> int | str:
    try:
        label = int(text)
    except ValueError:
        return f"'emotion' is {text!r}, not an integer 0-{len(EMOTIONS) - 1}"
    if not 0 <= label < len(EMOTIONS):
        return f"'emotion' is {label}, outside 0-{len(EMOTIONS) - 1}"
    return label


def _parse_pixels(text: str) -> np.ndarray | str:
    try:
        values = np.fromstring(text, dtype=np.int64, sep=" ") if text.strip() else np.empty(0, np.int64)
    except ValueError:  # a non-numeric token; the slow path below names it
        values = np.empty(0, np.int64)
    if values.size != PIXELS:
        tokens = text.split()
        bad = next((t for t in tokens if not t.lstrip("-").isdigit()), None)
        if bad is not None:
            return f"'pixels' holds {bad!r}, not an integer"
        return f"'pixels' has {len(tokens)} values, expected {PIXELS} ({INPUT_SIZE}x{INPUT_SIZE})"
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi > 255:
        return f"'pixels' has value {lo if lo < 0 else hi}, outside 0-255"
    return values.astype(np.uint8).reshape(INPUT_SIZE, INPUT_SIZE)


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        for row in reader:
            yield reader.line_num, row


def parse_csv(path: Path, skip_bad: bool = False) -> FaceData:
    """Parse the Kaggle CSV; `Usage` is optional (rows without it are Training)."""
    rows = _csv_rows(path)
    try:
        _, header = next(rows)
    except StopIteration:
        raise DataError(f"{path}: the file is empty; expected a header 'emotion,pixels,Usage'") from None
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    columns = {name.strip(): i for i, name in enumerate(header)}
    missing = [name for name in ("emotion", "pixels") if name not in columns]
    if missing:
        raise DataError(f"{path} line 1: header {header} lacks column(s) {missing}; expected 'emotion,pixels,Usage'")
    i_label, i_pixels, i_usage = columns["emotion"], columns["pixels"], columns.get("Usage")

    images: list[np.ndarray] = []
    labels: list[int] = []
    splits: list[str] = []
    skipped: list[BadRecord] = []
    try:
        for line, row in rows:
            where = f"{path.name} line {line}"
            if len(row) != len(header):
                _fail_or_skip(BadRecord(where, f"has {len(row)} fields, expected {len(header)}"), skipped, skip_bad)
                continue
            label = _parse_label(row[i_label])
            if isinstance(label, str):
                _fail_or_skip(BadRecord(where, label), skipped, skip_bad)
                continue
            usage = row[i_usage].strip() if i_usage is not None else "Training"
            if usage not in USAGE_TO_SPLIT:
                reason = f"'Usage' is {usage!r}, expected one of {sorted(USAGE_TO_SPLIT)}"
                _fail_or_skip(BadRecord(where, reason), skipped, skip_bad)
                continue
            pixels = _parse_pixels(row[i_pixels])
            if isinstance(pixels, str):
                _fail_or_skip(BadRecord(where, pixels), skipped, skip_bad)
                continue
            images.append(pixels)
            labels.append(label)
            splits.append(USAGE_TO_SPLIT[usage])
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        # A truncated .gz or binary garbage: keep the line number we reached.
        raise DataError(f"{path}: unreadable after {len(images) + len(skipped)} records ({exc})") from exc
    return _assemble(images, labels, splits, str(path), skipped)


def _assemble(
    images: list[np.ndarray], labels: list[int], splits: list[str], source: str, skipped: list[BadRecord]
) -> FaceData:
    if not images:
        raise DataError(f"{source}: no usable faces found" + (f" ({len(skipped)} bad records skipped)" if skipped else ""))
    return FaceData(
        images=np.stack(images).astype(np.uint8),
        labels=np.asarray(labels, dtype=np.int64),
        splits=np.asarray(splits),
        source=source,
        skipped=skipped,
    )


def _folder_split(name: str) -> str | None:
    return {"train": "train", "training": "train", "val": "val", "validation": "val", "test": "test"}.get(name.lower())


def _read_image(path: Path) -> np.ndarray | str:
    import cv2

    try:
        buffer = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        return f"cannot read file ({exc.strerror})"
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if image is None:
        return "not a decodable image (corrupt, truncated or not an image format OpenCV reads)"
    if image.dtype != np.uint8:
        return f"pixel type {image.dtype} is not 8-bit"
    return resize_face(to_gray(image))


def parse_folders(root: Path, skip_bad: bool = False) -> FaceData:
    """Kaggle image-folder layout: root/{train,val,test}/<emotion>/*.jpg."""
    split_dirs = sorted(d for d in root.iterdir() if d.is_dir() and _folder_split(d.name))
    if not split_dirs:
        raise DataError(f"{root}: no 'train', 'val' or 'test' folder; expected root/train/<emotion>/*.jpg")
    images: list[np.ndarray] = []
    labels: list[int] = []
    splits: list[str] = []
    skipped: list[BadRecord] = []
    for split_dir in split_dirs:
        for emotion_dir in sorted(d for d in split_dir.iterdir() if d.is_dir()):
            emotion = emotion_dir.name.lower()
            if emotion not in EMOTIONS:
                raise DataError(f"{emotion_dir}: folder name is not an emotion; expected one of {', '.join(EMOTIONS)}")
            for file in sorted(emotion_dir.iterdir()):
                if file.suffix.lower() not in IMAGE_SUFFIXES or not file.is_file():
                    continue
                image = _read_image(file)
                if isinstance(image, str):
                    _fail_or_skip(BadRecord(str(file), image), skipped, skip_bad)
                    continue
                images.append(image)
                labels.append(EMOTIONS.index(emotion))
                splits.append(_folder_split(split_dir.name) or "train")
    return _assemble(images, labels, splits, str(root), skipped)


def default_cache_dir() -> Path:
    if os.environ.get("EMOTION_EDGE_CACHE"):
        return Path(os.environ["EMOTION_EDGE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "emotion-edge"


def _cache_path(path: Path, skip_bad: bool, cache_dir: Path) -> Path:
    stat = path.stat()
    identity = f"{CACHE_FORMAT}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{skip_bad}"
    return cache_dir / f"fer2013-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.npz"


def _save_cache(data: FaceData, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with replacing(target, tmp=target.with_suffix(".tmp.npz")) as tmp:  # a killed run never leaves a half-written cache
        np.savez(
            tmp,
            images=data.images,
            labels=data.labels,
            splits=data.splits,
            skipped=np.asarray([[b.where, b.reason] for b in data.skipped], dtype=str).reshape(-1, 2),
        )


def _load_cache(target: Path, source: str) -> FaceData | None:
    try:
        with np.load(target) as npz:
            return FaceData(
                images=npz["images"],
                labels=npz["labels"],
                splits=npz["splits"],
                source=source,
                skipped=[BadRecord(str(w), str(r)) for w, r in npz["skipped"]],
            )
    except (OSError, KeyError, ValueError) as exc:
        log.warning("ignoring unreadable cache", extra={"cache": str(target), "error": str(exc)})
        return None


def load_fer2013(path: str | Path, skip_bad: bool = False, cache_dir: Path | None = None) -> FaceData:
    """Load a FER2013 CSV (.csv/.csv.gz) or image-folder tree. `cache_dir=None` uses the default cache."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; pass the FER2013 CSV (.csv or .csv.gz) or image-folder root")
    if path.is_dir():
        data = parse_folders(path, skip_bad)
    else:
        target = _cache_path(path, skip_bad, cache_dir or default_cache_dir())
        data = _load_cache(target, str(path)) if target.exists() else None
        if data is None:
            data = parse_csv(path, skip_bad)
            try:
                _save_cache(data, target)
            except OSError as exc:
                log.warning("could not write cache", extra={"cache": str(target), "error": str(exc)})
    if data.skipped:
        log.warning(
            "skipped %d bad records, first: %s", len(data.skipped), data.skipped[0], extra={"skipped": len(data.skipped)}
        )
    return data
