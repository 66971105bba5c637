"""Pack FER2013's Training and PublicTest faces for the GPU host (run HERE, on the workstation).

    python -m emotion_edge.training.gpu.pack --data ../shared/data/fer2013.csv.gz --out runs/gpu-pack

writes runs/gpu-pack/faces.npz (an ignored path: never commit it; it is the data set's pixels): uint8 labels,
FER2013 row indices, the split of each face and the faces themselves, losslessly coded as JPEG-LS-style
median-predictor residuals (zigzagged, then xz): 32,298 faces pack into 50.2 MB (47.8 MiB) instead of 74.4 MB
raw, 70.5 MB plain zlib or 56.8 MB plain xz, so pack and code (2.2 MB) fit in the 64 MiB the device tool
carries. PrivateTest is never packed: the GPU
host can neither train, tune nor select on it. The CSV's sha256 and size travel in the pack, so teacher outputs
computed there are accepted here by `emotion-edge train --teacher`.
"""

from __future__ import annotations

import argparse
import json
import logging
import lzma
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PACK_FORMAT = "emotion-edge-gpu-pack-v1"
# Residual coders: xz packs the real Training+PublicTest faces into 50.2 MB (6 minutes to encode on the shared
# 2-core workstation, seconds to decode), zlib into 54.0 MB in a minute. Both fit the device tool's 64 MiB.
CODECS = {"xz": (lambda raw: lzma.compress(raw, preset=6), lzma.decompress),
          "zlib": (lambda raw: zlib.compress(raw, 9), zlib.decompress)}
SPLIT_CODES = {"train": 0, "val": 1}


@dataclass(frozen=True)
class Pack:
    """Faces (n, 48, 48) uint8, labels (FER2013 indices), split codes (0 Training, 1 PublicTest), row indices."""

    faces: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    rows: np.ndarray
    data_sha256: str
    data_size: int

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = self.splits == SPLIT_CODES[name]
        return self.faces[keep], self.labels[keep], self.rows[keep]


def _med_prediction(left: np.ndarray, up: np.ndarray, upleft: np.ndarray) -> np.ndarray:
    """LOCO-I's median edge detector (JPEG-LS), on int16 arrays."""
    low, high = np.minimum(left, up), np.maximum(left, up)
    return np.where(upleft >= high, low, np.where(upleft <= low, high, left + up - upleft))


def _neighbours(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    left = np.zeros_like(x)
    up = np.zeros_like(x)
    upleft = np.zeros_like(x)
    left[:, :, 1:] = x[:, :, :-1]
    up[:, 1:, :] = x[:, :-1, :]
    upleft[:, 1:, 1:] = x[:, :-1, :-1]
    left[:, 1:, 0] = up[:, 1:, 0]  # first column: predict from above
    upleft[:, 1:, 0] = up[:, 1:, 0]
    return left, up, upleft


def encode_faces(faces: np.ndarray, codec: str = "zlib") -> bytes:
    """Lossless: zigzagged median-predictor residuals, compressed by `codec` (xz or zlib)."""
    x = faces.astype(np.int16)
    residual = (x - _med_prediction(*_neighbours(x)) + 128) % 256 - 128
    zigzag = np.where(residual >= 0, 2 * residual, -2 * residual - 1).astype(np.uint8)
    return CODECS[codec][0](zigzag.tobytes())


def decode_faces(blob: bytes, shape: tuple[int, int, int], codec: str = "zlib") -> np.ndarray:
    """The inverse of `encode_faces`: pixel by pixel, each step vectorised over every face (2,304 steps)."""
    zigzag = np.frombuffer(CODECS[codec][1](blob), dtype=np.uint8).reshape(shape).astype(np.int16)
    # Pixel-major (h, w, n): each step reads and writes contiguous rows of n values.
    residual = np.ascontiguousarray(np.where(zigzag % 2 == 0, zigzag // 2, -(zigzag + 1) // 2).transpose(1, 2, 0))
    n, h, w = shape
    x = np.zeros((h, w, n), dtype=np.int16)
    zero = np.zeros(n, dtype=np.int16)
    for i in range(h):
        for j in range(w):
            up = x[i - 1, j] if i else zero
            left = x[i, j - 1] if j else up
            upleft = x[i - 1, j - 1] if i and j else (up if i else zero)
            x[i, j] = (_med_prediction(left, up, upleft) + residual[i, j]) % 256
    return np.ascontiguousarray(x.transpose(2, 0, 1)).astype(np.uint8)


def build_pack(data_path: str | Path) -> Pack:
    from emotion_edge.training.distill import data_identity
    from emotion_edge.training.fer2013 import load_fer2013

    identity = data_identity(data_path)
    data = load_fer2013(data_path)
    if data.skipped:
        raise ValueError(f"{data_path}: {len(data.skipped)} bad records; the pack is keyed by CSV row, fix the file")
    rows = np.flatnonzero(np.isin(data.splits, list(SPLIT_CODES)))  # never PrivateTest
    splits = np.asarray([SPLIT_CODES[s] for s in data.splits[rows]], dtype=np.uint8)
    return Pack(data.images[rows], data.labels[rows].astype(np.uint8), splits, rows.astype(np.int32),
                identity.sha256, identity.size)


def save_pack(pack: Pack, out_dir: Path, codec: str = "xz") -> Path:
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; use {' or '.join(CODECS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"format": PACK_FORMAT, "shape": list(pack.faces.shape), "data_sha256": pack.data_sha256,
            "data_size": pack.data_size, "codec": codec}
    path = out_dir / "faces.npz"
    blob = np.frombuffer(encode_faces(pack.faces, codec), dtype=np.uint8)
    np.savez(path, faces=blob, labels=pack.labels, splits=pack.splits, rows=pack.rows,
             meta=np.asarray(json.dumps(meta)))
    return path


def load_pack(path: str | Path) -> Pack:
    path = Path(path)
    if path.is_dir():
        path = path / "faces.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no pack; make one on the workstation with "
                                "`python -m emotion_edge.training.gpu.pack` and carry its folder")
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        if meta.get("format") != PACK_FORMAT:
            raise ValueError(f"{path}: format {meta.get('format')!r}, expected {PACK_FORMAT!r}")
        faces = decode_faces(npz["faces"].tobytes(), tuple(meta["shape"]), meta.get("codec", "zlib"))
        return Pack(faces, npz["labels"], npz["splits"], npz["rows"], meta["data_sha256"], int(meta["data_size"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, help="the FER2013 CSV (.csv/.csv.gz)")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-pack"), help="pack folder (keep it ignored)")
    parser.add_argument("--codec", default="xz", choices=list(CODECS),
                        help="residual coder: xz (50.2 MB, minutes to encode) or zlib (54.0 MB, seconds)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    pack = build_pack(args.data)
    path = save_pack(pack, args.out, args.codec)
    counts = {name: int((pack.splits == code).sum()) for name, code in SPLIT_CODES.items()}
    print(f"{path}: {counts['train']} Training + {counts['val']} PublicTest faces, {path.stat().st_size / 1e6:.1f} MB "
          f"({path.stat().st_size / 2**20:.1f} MiB); data sha256 {pack.data_sha256[:12]}...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
