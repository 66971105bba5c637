
import numpy as np
import pytest
from helpers import synthetic

from emotion_edge.training import fer2013
from emotion_edge.training.fer2013 import DataError, load_fer2013


def _assert_matches_synthetic(data):
    rows = synthetic.records()
    assert len(data) == len(rows)
    assert data.images.shape == (len(rows), 48, 48) and data.images.dtype == np.uint8
    assert np.array_equal(data.labels, [label for label, _, _ in rows])
    assert data.counts()["train"]["happy"] == synthetic.USAGES["Training"]
    assert set(data.counts()) == {"train", "val", "test"}


def test_csv_plain_and_gzip_load_the_same_faces(tmp_path):
    plain = load_fer2013(synthetic.write_csv(tmp_path / "a.csv"))
    packed = load_fer2013(synthetic.write_csv(tmp_path / "a.csv.gz", gz=True))
    _assert_matches_synthetic(plain)
    assert np.array_equal(plain.images, packed.images)
    assert np.array_equal(plain.images[0], synthetic.records()[0][1])


def test_image_folders_load_with_split_from_folder_name(tmp_path):
    data = load_fer2013(synthetic.write_folders(tmp_path / "faces"))
    assert len(data) == len(synthetic.records())
    assert data.counts()["val"]["fear"] == synthetic.USAGES["PublicTest"]


def test_image_folders_resize_and_gray_convert(tmp_path):
    import cv2

    target = tmp_path / "faces" / "train" / "happy"
    target.mkdir(parents=True)
    cv2.imwrite(str(target / "big.png"), np.full((96, 96, 3), 128, np.uint8))
    data = load_fer2013(tmp_path / "faces")
    assert data.images.shape == (1, 48, 48) and int(data.images[0, 0, 0]) == 128


def _csv_with(tmp_path, bad_line: str):
    rows = synthetic.records(per_split={"Training": 1})
    text = synthetic.csv_text(rows).splitlines()
    text.insert(3, bad_line)  # becomes line 4 of the file
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(text) + "\n")
    return path


PIX = " ".join(["7"] * 2304)


@pytest.mark.parametrize(
    "line, message",
    [
        (f"9,{PIX},Training", "line 4: 'emotion' is 9, outside 0-6"),
        (f"x,{PIX},Training", "line 4: 'emotion' is 'x', not an integer"),
        ("1," + " ".join(["7"] * 2000) + ",Training", "line 4: 'pixels' has 2000 values, expected 2304"),
        ("1," + " ".join(["7"] * 2303) + " 300,Training", "line 4: 'pixels' has value 300, outside 0-255"),
        ("1," + " ".join(["7"] * 2303) + " -4,Training", "line 4: 'pixels' has value -4, outside 0-255"),
        ("1," + " ".join(["7"] * 2303) + " abc,Training", "line 4: 'pixels' holds 'abc', not an integer"),
        (f"1,{PIX},Holdout", "line 4: 'Usage' is 'Holdout'"),
        (f"1,{PIX}", "line 4: has 2 fields, expected 3"),
    ],
)
def test_each_bad_row_stops_the_load_with_its_line_and_reason(tmp_path, line, message):
    path = _csv_with(tmp_path, line)
    with pytest.raises(DataError) as err:
        load_fer2013(path)
    assert message in str(err.value)
    assert "--skip-bad" in str(err.value)


def test_skip_bad_skips_and_counts_keeping_every_good_row(tmp_path):
    path = _csv_with(tmp_path, f"9,{PIX},Training")
    data = load_fer2013(path, skip_bad=True)
    assert len(data) == len(synthetic.records(per_split={"Training": 1}))
    assert len(data.skipped) == 1 and "line 4" in str(data.skipped[0])


def test_unreadable_image_is_reported_with_its_file(tmp_path):
    root = synthetic.write_folders(tmp_path / "faces", synthetic.records(per_split={"Training": 1}))
    bogus = root / "train" / "sad" / "notes.jpg"
    bogus.write_text("this is not a picture")
    with pytest.raises(DataError, match=r"notes\.jpg: not a decodable image"):
        load_fer2013(root)
    data = load_fer2013(root, skip_bad=True)
    assert len(data) == 7 and str(bogus) in data.skipped[0].where


def test_folder_that_is_not_an_emotion_is_named(tmp_path):
    (tmp_path / "faces" / "train" / "joyful").mkdir(parents=True)
    with pytest.raises(DataError, match="joyful: folder name is not an emotion"):
        load_fer2013(tmp_path / "faces")


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "the file is empty"),
        ("label,image\n1,2\n", "lacks column(s) ['emotion', 'pixels']"),
    ],
)
def test_header_problems(tmp_path, content, message):
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        load_fer2013(path)


def test_truncated_gzip_is_a_clear_error(tmp_path):
    full = synthetic.write_csv(tmp_path / "full.csv.gz", gz=True).read_bytes()
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match="cut.csv.gz: unreadable after"):
        load_fer2013(cut)


def test_missing_path_says_what_to_pass(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_fer2013(tmp_path / "nope.csv")


def test_second_load_comes_from_the_cache_without_parsing(tmp_path, monkeypatch):
    path = synthetic.write_csv(tmp_path / "a.csv")
    first = load_fer2013(path)

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed again instead of using the cache")

    monkeypatch.setattr(fer2013, "parse_csv", no_parse)
    second = load_fer2013(path)
    assert np.array_equal(first.images, second.images) and np.array_equal(first.splits, second.splits)


def test_cache_is_invalidated_when_the_file_changes(tmp_path):
    path = synthetic.write_csv(tmp_path / "a.csv")
    load_fer2013(path)
    synthetic.write_csv(path, synthetic.records(per_split={"Training": 2}))
    assert len(load_fer2013(path)) == 14
