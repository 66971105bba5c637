"""What the room looks like right now: faces in view, the room's dominant emotion, how many faces show each.

One summary for every consumer (the retained MQTT `state` topic, the OLED, the
status page), so they never disagree about the room.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotion_edge.device.pipeline import FrameReading


@dataclass(frozen=True)
class RoomState:
    faces: int
    # The emotion with the highest summed smoothed probability over all faces; None with no face in view.
    # Summing probabilities (rather than voting on each face's label) lets two unsure faces outweigh one
    # sure one only when they really lean the same way.
    dominant: str | None
    confidence: float  # the dominant emotion's mean smoothed probability over the faces; 0 with no face
    counts: dict[str, int]  # faces whose own reported emotion is each label (all labels present, zeros included)

    def to_dict(self) -> dict:
        return {"faces": self.faces, "dominant": self.dominant, "confidence": round(self.confidence, 4),
                "counts": dict(self.counts)}


def room_state(reading: FrameReading | None, labels: tuple[str, ...]) -> RoomState:
    counts = {label: 0 for label in labels}
    if reading is None or not reading.faces:
        return RoomState(0, None, 0.0, counts)
    for face in reading.faces:
        counts[labels[face.state.dominant]] += 1
    total = np.sum([face.state.probabilities for face in reading.faces], axis=0)
    k = int(np.argmax(total))
    return RoomState(len(reading.faces), labels[k], float(total[k]) / len(reading.faces), counts)
