"""Write examples/demo.mp4: a replayable stand-in camera for machines without one.

The face is scikit-image's astronaut photo (Eileen Collins, NASA, public
domain), drifting across a 640x480 frame and briefly leaving it, so the clip
exercises detection, tracking, track end and a new track.

    python examples/make_demo_clip.py   # needs the test extra (scikit-image)
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from skimage import data

WIDTH, HEIGHT, FPS, FRAMES = 640, 480, 15, 90


def main() -> None:
    head = np.ascontiguousarray(data.astronaut()[0:300, 80:380, ::-1])  # head and shoulders, BGR
    head = cv2.resize(head, (240, 240), interpolation=cv2.INTER_AREA)
    background = np.tile(np.linspace(60, 140, WIDTH, dtype=np.uint8)[None, :, None], (HEIGHT, 1, 3))
    out = Path(__file__).with_name("demo.mp4")
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for i in range(FRAMES):
        frame = background.copy()
        if not 55 <= i < 65:  # the person steps out of view for 10 frames
            x = int(200 + 150 * math.sin(i / 12.0))
            y = int(120 + 30 * math.cos(i / 9.0))
            frame[y : y + 240, x : x + 240] = head
        writer.write(frame)
    writer.release()
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
