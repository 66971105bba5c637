import pytest

from emotion_edge.device.geometry import Box
from emotion_edge.device.tracking import IouTracker, Track, TrackerConfig

DT = 0.1  # 10 detections per second


def ids(tracks: tuple[Track, ...]) -> list[int]:
    return [t.track_id for t in tracks]


def test_box_geometry():
    a = Box(0, 0, 10, 10)
    assert a.center == (5.0, 5.0)
    assert a.iou(Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert a.iou(a) == 1.0
    assert a.iou(Box(10, 0, 10, 10)) == 0.0  # touching edges share no area
    assert Box(1.4, 2.6, 10.2, 9.7).as_xywh() == (1, 3, 10, 10)
    with pytest.raises(ValueError, match="positive"):
        Box(0, 0, 0, 10)


def test_ids_stay_stable_while_faces_move():
    tracker = IouTracker()
    first = tracker.update([Box(100, 100, 60, 60), Box(400, 120, 50, 50)], now=0.0)
    assert ids(first.new) == [1, 2] and first.continued == () and first.ended == ()
    for k in range(1, 10):
        # Face 1 drifts right, face 2 drifts up-left; the detector lists them in varying order.
        a, b = Box(100 + 8 * k, 100, 60, 60), Box(400 - 5 * k, 120 - 4 * k, 50, 50)
        result = tracker.update([b, a] if k % 2 else [a, b], now=k * DT)
        assert result.new == () and result.ended == () and result.missed == ()
        boxes = {t.track_id: t.box for t in result.continued}
        assert boxes == {1: a, 2: b}
    assert [t.hits for t in tracker.tracks] == [10, 10]


def test_new_face_gets_the_next_id():
    tracker = IouTracker()
    tracker.update([Box(100, 100, 60, 60)], now=0.0)
    result = tracker.update([Box(104, 100, 60, 60), Box(300, 100, 60, 60)], now=DT)
    assert ids(result.continued) == [1]
    assert ids(result.new) == [2]
    assert result.new[0].first_seen == DT and result.new[0].hits == 1
    assert ids(result.detected) == [1, 2]


def test_crossing_faces_keep_their_ids():
    # 150 px/s with 60 px faces; around frame 7 each face's last box overlaps
    # the other's new detection more than its own, so matching on unpredicted
    # boxes would swap the ids.
    tracker = IouTracker()
    speed = 15
    for k in range(14):
        jitter = 1 if k % 2 else -1  # detector boxes are never perfectly smooth
        a = Box(speed * k + jitter, 100, 60, 60)  # moving right
        b = Box(200 - speed * k - jitter, 108, 60, 60)  # moving left, a little lower
        result = tracker.update([b, a] if k % 3 else [a, b], now=k * DT)
        assert result.new == () or k == 0
        assert {t.track_id: t.box for t in result.detected} == {1: a, 2: b}, f"ids swapped at frame {k}"
    final = {t.track_id: t.box.x for t in tracker.tracks}
    assert final[1] > final[2]  # they really did pass each other


def test_face_that_leaves_ends_after_max_missed_and_returns_with_a_new_id():
    tracker = IouTracker(TrackerConfig(max_missed=2, max_age_s=10.0))
    face = Box(100, 100, 60, 60)
    for k in range(3):
        tracker.update([face], now=k * DT)
    first_gone = tracker.update([], now=3 * DT)
    assert ids(first_gone.missed) == [1] and first_gone.missed[0].misses == 1
    assert ids(tracker.update([], now=4 * DT).missed) == [1]
    gone = tracker.update([], now=5 * DT)
    assert ids(gone.ended) == [1] and gone.missed == ()
    assert gone.ended[0].hits == 3 and gone.ended[0].misses == 3 and gone.ended[0].last_seen == pytest.approx(0.2)
    assert tracker.tracks == ()

    back = tracker.update([face], now=6 * DT)
    assert ids(back.new) == [2] and back.continued == ()


def test_a_miss_within_the_limit_keeps_the_id():
    tracker = IouTracker(TrackerConfig(max_missed=2, max_age_s=10.0))
    tracker.update([Box(100, 100, 60, 60)], now=0.0)
    tracker.update([], now=DT)
    result = tracker.update([Box(103, 100, 60, 60)], now=2 * DT)
    assert ids(result.continued) == [1] and result.continued[0].misses == 0


def test_track_older_than_max_age_ends_even_without_counted_misses():
    tracker = IouTracker(TrackerConfig(max_missed=100, max_age_s=0.5))
    face = Box(100, 100, 60, 60)
    tracker.update([face], now=0.0)
    # The camera stalled for 0.6 s: the same spot now holds, as far as we know, someone else.
    result = tracker.update([face], now=0.6)
    assert ids(result.ended) == [1]
    assert ids(result.new) == [2]


def test_predict_extrapolates_constant_velocity_without_changing_state():
    tracker = IouTracker()
    tracker.update([Box(100, 50, 40, 40)], now=0.0)
    assert tracker.predict(0.05) == {1: Box(100, 50, 40, 40)}  # one detection: no speed known yet
    tracker.update([Box(110, 46, 40, 40)], now=0.1)  # 100 px/s right, 40 px/s up
    assert tracker.tracks[0].velocity == pytest.approx((100.0, -40.0))

    predicted = tracker.predict(0.25)[1]
    assert (predicted.x, predicted.y) == pytest.approx((125.0, 40.0))
    assert (predicted.w, predicted.h) == (40, 40)
    assert tracker.predict(0.25) == tracker.predict(0.25)
    assert tracker.tracks[0].box == Box(110, 46, 40, 40)


def test_detect_every_n_frames_keeps_the_id_on_a_fast_face():
    # 300 px/s with detection at 5 Hz: 60 px between detections of a 50 px face, no overlap at all.
    tracker = IouTracker()
    tracker.update([Box(0, 0, 50, 50)], now=0.0)
    tracker.update([Box(60, 0, 50, 50)], now=0.2)  # IoU 0: the centroid fallback pairs it
    for now, x in ((0.3, 90), (0.35, 105)):  # skipped frames: classify on predicted boxes
        assert tracker.predict(now)[1].x == pytest.approx(x)
    result = tracker.update([Box(120, 0, 50, 50)], now=0.4)  # matched by IoU with the prediction
    assert ids(result.continued) == [1] and result.new == ()


def test_centroid_fallback_can_be_disabled_and_is_bounded():
    far_jump = [Box(0, 0, 50, 50)], [Box(60, 0, 50, 50)]
    strict = IouTracker(TrackerConfig(centroid_fallback=False))
    strict.update(far_jump[0], now=0.0)
    result = strict.update(far_jump[1], now=DT)
    assert ids(result.new) == [2] and ids(result.missed) == [1]

    # Within one face size: IoU 0.05 is below the threshold, the fallback pairs it.
    near = IouTracker(TrackerConfig(max_center_distance=1.0))
    near.update([Box(0, 0, 50, 50)], now=0.0)
    result = near.update([Box(45, 0, 50, 50), Box(500, 0, 50, 50)], now=DT)
    assert ids(result.continued) == [1] and ids(result.new) == [2]
    assert result.continued[0].box == Box(45, 0, 50, 50)

    too_far = IouTracker(TrackerConfig(max_center_distance=1.0))
    too_far.update([Box(0, 0, 50, 50)], now=0.0)
    result = too_far.update([Box(55, 0, 50, 50)], now=DT)  # 1.1 face sizes away
    assert ids(result.new) == [2] and ids(result.missed) == [1]


def test_greedy_matching_prefers_the_highest_iou():
    tracker = IouTracker()
    tracker.update([Box(0, 0, 100, 100)], now=0.0)
    result = tracker.update([Box(40, 0, 100, 100), Box(10, 0, 100, 100)], now=DT)
    assert result.continued[0].box == Box(10, 0, 100, 100)
    assert ids(result.new) == [2] and result.new[0].box == Box(40, 0, 100, 100)


def test_rejects_time_going_backwards_and_non_boxes():
    tracker = IouTracker()
    tracker.update([], now=5.0)
    with pytest.raises(ValueError, match="must not decrease"):
        tracker.update([], now=4.0)
    with pytest.raises(TypeError, match="Box"):
        tracker.update([(0, 0, 10, 10)], now=6.0)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"iou_threshold": 0.0}, "iou_threshold"),
        ({"iou_threshold": 1.5}, "iou_threshold"),
        ({"max_center_distance": -1.0}, "max_center_distance"),
        ({"max_center_distance": float("nan")}, "max_center_distance"),
        ({"max_missed": -1}, "max_missed"),
        ({"max_missed": 2.5}, "max_missed"),
        ({"max_age_s": 0.0}, "max_age_s"),
        ({"max_age_s": float("inf")}, "max_age_s"),
    ],
)
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"field '{field}'"):
        TrackerConfig(**kwargs)
