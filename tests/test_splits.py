import numpy as np
import pytest
from helpers import synthetic

from emotion_edge.device.contract import EMOTIONS
from emotion_edge.training.fer2013 import DataError, load_fer2013
from emotion_edge.training.splits import canonical_split, make_splits


def test_official_splits_follow_usage(fer_csv):
    splits = make_splits(load_fer2013(fer_csv), EMOTIONS)
    assert {k: len(v) for k, v in splits.items()} == {
        "train": 7 * synthetic.USAGES["Training"], "val": 7 * synthetic.USAGES["PublicTest"],
        "test": 7 * synthetic.USAGES["PrivateTest"],
    }


def test_stratified_protocol_is_80_10_10_per_class(tmp_path):
    path = synthetic.write_csv(tmp_path / "s.csv", synthetic.records(per_split={"Training": 50}))
    splits = make_splits(load_fer2013(path), EMOTIONS, protocol="stratified", seed=3)
    total = sum(len(s) for s in splits.values())
    assert total == 350
    assert [len(splits[k]) for k in ("train", "val", "test")] == [280, 35, 35]
    for name in ("train", "val", "test"):
        counts = np.bincount(splits[name].labels, minlength=7)
        assert counts.max() - counts.min() <= 1, (name, counts)  # each class in proportion


def test_stratified_split_is_reproducible_by_seed(tmp_path):
    path = synthetic.write_csv(tmp_path / "s.csv", synthetic.records(per_split={"Training": 20}))
    data = load_fer2013(path)
    a = make_splits(data, EMOTIONS, "stratified", seed=1)["test"].images
    b = make_splits(data, EMOTIONS, "stratified", seed=1)["test"].images
    c = make_splits(data, EMOTIONS, "stratified", seed=2)["test"].images
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_class_subset_drops_and_renumbers(fer_csv):
    labels = ("angry", "happy", "sad", "surprise", "neutral")
    splits = make_splits(load_fer2013(fer_csv), labels)
    assert len(splits["train"]) == 5 * synthetic.USAGES["Training"]
    assert sorted(np.unique(splits["train"].labels)) == [0, 1, 2, 3, 4]


def test_folders_without_val_carve_it_from_train(tmp_path):
    rows = [r for r in synthetic.records(per_split={"Training": 20, "PrivateTest": 3})]
    root = synthetic.write_folders(tmp_path / "f", rows)
    splits = make_splits(load_fer2013(root), EMOTIONS)
    assert len(splits["val"]) == 14 and len(splits["train"]) == 126 and len(splits["test"]) == 21


def test_split_names_accept_kaggle_spelling():
    assert canonical_split("PrivateTest") == "test" and canonical_split("publictest") == "val"
    with pytest.raises(DataError, match="unknown split 'holdout'"):
        canonical_split("holdout")
