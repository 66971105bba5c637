"""Train/validation/test splits: FER2013's official ones, or the seed paper's stratified 80:10:10."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotion_edge.device.contract import EMOTIONS
from emotion_edge.training.fer2013 import SPLIT_NAMES, DataError, FaceData

# Accepted spellings on the command line, mapped to the canonical split names.
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "validation": "val", "publictest": "val",
    "test": "test", "privatetest": "test",
}


@dataclass(frozen=True)
class Split:
    """uint8 faces (N, 48, 48) and labels indexing the model's `labels`."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def canonical_split(name: str) -> str:
    try:
        return SPLIT_ALIASES[name.strip().lower()]
    except KeyError:
        raise DataError(f"unknown split {name!r}; use Training, PublicTest or PrivateTest (or train, val, test)") from None


def official_splits(data: FaceData, seed: int = 0, val_fraction: float = 0.1) -> dict[str, Split]:
    """Training / PublicTest / PrivateTest as recorded in the data.

    The Kaggle image folders have no PublicTest; then a stratified `val_fraction`
    of Training stands in, so the test split is still never used for selection.
    """
    present = set(np.unique(data.splits).tolist())
    if "train" not in present:
        raise DataError(f"{data.source}: has no Training records")
    out = {name: Split(data.images[data.splits == name], data.labels[data.splits == name]) for name in SPLIT_NAMES}
    if "val" not in present:
        train, val = _stratified_two_way(out["train"], val_fraction, seed)
        out["train"], out["val"] = train, val
    return out


def _stratified_two_way(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(split))
    keep, held = train_test_split(index, test_size=fraction, random_state=seed, stratify=split.labels)
    return Split(split.images[keep], split.labels[keep]), Split(split.images[held], split.labels[held])


def stratified_splits(data: FaceData, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, Split]:
    """The seed paper's protocol: pool every record and split stratified by emotion."""
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise DataError(f"split fractions {fractions} do not add up to 1")
    pooled = Split(data.images, data.labels)
    rest, test = _stratified_two_way(pooled, fractions[2], seed)
    train, val = _stratified_two_way(rest, fractions[1] / (fractions[0] + fractions[1]), seed)
    return {"train": train, "val": val, "test": test}


def select_classes(split: Split, labels: tuple[str, ...]) -> Split:
    """Keep only faces of `labels` and renumber them 0..len(labels)-1 in that order."""
    remap = np.full(len(EMOTIONS), -1, dtype=np.int64)
    for new, name in enumerate(labels):
        remap[EMOTIONS.index(name)] = new
    mapped = remap[split.labels]
    keep = mapped >= 0
    return Split(split.images[keep], mapped[keep])


def make_splits(data: FaceData, labels: tuple[str, ...], protocol: str = "official", seed: int = 0) -> dict[str, Split]:
    if protocol == "official":
        splits = official_splits(data, seed)
    elif protocol == "stratified":
        splits = stratified_splits(data, seed)
    else:
        raise DataError(f"unknown split protocol {protocol!r}; use 'official' or 'stratified'")
    return {name: select_classes(split, labels) for name, split in splits.items()}
