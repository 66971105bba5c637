"""The room summary that MQTT `state`, the OLED and the status page share, and the live snapshot hub."""


import numpy as np

from emotion_edge.device.contract import EMOTIONS
from emotion_edge.device.daemon.live import LiveState
from emotion_edge.device.geometry import Box
from emotion_edge.device.pipeline import FaceReading, FrameReading
from emotion_edge.device.room import room_state
from emotion_edge.device.smoothing import SmoothedState
from emotion_edge.device.sources import Frame


def _face(track_id: int, probs: list[float]) -> FaceReading:
    p = np.array(probs, np.float32)
    state = SmoothedState(int(np.argmax(p)), float(p.max()), p, False)
    return FaceReading(track_id, Box(0, 0, 10, 10), (0, 0, 0.1, 0.1), p, state, False)


def test_empty_room_has_no_dominant_emotion_and_zero_counts():
    room = room_state(FrameReading(0, 0.0, (), (), True), EMOTIONS)
    assert room.faces == 0 and room.dominant is None and room.confidence == 0.0
    assert room.counts == {label: 0 for label in EMOTIONS}


def test_dominant_emotion_sums_probabilities_over_faces():
    # Two faces lean sad (0.5 each) though each one's own label differs; one face is fairly happy (0.7).
    faces = (_face(1, [0, 0, 0, 0.1, 0.5, 0, 0.4]), _face(2, [0, 0, 0, 0.1, 0.45, 0, 0.45]),
             _face(3, [0, 0, 0, 0.7, 0.2, 0, 0.1]))
    room = room_state(FrameReading(5, 1.0, faces, (), True), EMOTIONS)
    assert room.faces == 3
    assert room.dominant == "sad" and abs(room.confidence - (0.5 + 0.45 + 0.2) / 3) < 1e-6
    assert room.counts["sad"] == 2 and room.counts["happy"] == 1 and sum(room.counts.values()) == 3
    assert room.to_dict()["dominant"] == "sad"


def test_live_state_publishes_each_frame_as_a_new_snapshot():
    live = LiveState(EMOTIONS)
    start = live.snapshot().sequence
    frame = Frame(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), 0.0, 0)
    reading = FrameReading(0, 0.0, (_face(1, [0, 0, 0, 1, 0, 0, 0]),), (), True)
    live.update_frame(frame, reading)
    snap = live.snapshot()
    assert snap.sequence == start + 1 and snap.room.dominant == "happy" and snap.frame is frame
    live.update(mqtt="connected")
    assert live.snapshot().mqtt == "connected" and live.snapshot().frame is frame
    assert live.snapshot().sequence == snap.sequence, "other fields do not count as a new frame"
