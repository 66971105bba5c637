"""Find faces in a camera frame (gray, or BGR for a detector that prefers colour): OpenCV's Haar cascade or
MediaPipe's BlazeFace on LiteRT.

Both detectors' models come from package registries and are installed with the
software, so nothing is downloaded at run time:

* haar: `haarcascade_frontalface_default.xml`, shipped inside the
  opencv-python(-headless) wheel (`cv2.data.haarcascades`).
* blazeface-short / blazeface-full: MediaPipe's BlazeFace short-range
  (128x128 input, 896 anchors) and full-range (192x192, 2304 anchors) .tflite
  models, shipped inside this package (`models/`, Apache-2.0; its README says
  where they came from and their sha256). The models run on the same LiteRT
  interpreter as the emotion model; the SSD anchors, box decoding and NMS are
  reimplemented here after MediaPipe's ssd_anchors_calculator /
  tensors_to_detections_calculator.

Every detector takes a 2-D uint8 gray frame and returns `Detection`s whose
boxes are in pixels of that frame, clipped to it. A BGR frame is accepted too:
Haar converts it to gray, BlazeFace uses its colour, which it was trained on
(gray replicated to RGB works, but its scores are generally lower). A face cut
by the frame edge is reported clipped: `contract.crop_face` pads such crops
again by border replication. Detectors are not thread-safe: give each thread
its own.
"""

from emotion_edge.device.detection.base import (
    HAAR_CASCADE,
    KINDS,
    Detection,
    DetectorConfig,
    DetectorError,
    FaceDetector,
)
from emotion_edge.device.detection.blazeface import (
    BLAZEFACE_SPECS,
    BlazeFaceDetector,
    BlazeFaceSpec,
    blazeface_model_path,
    decode_boxes,
    models_dir,
    sigmoid_scores,
    ssd_anchors,
)
from emotion_edge.device.detection.factory import make_detector
from emotion_edge.device.detection.haar import HaarDetector
from emotion_edge.device.detection.nms import non_max_suppression

__all__ = [
    "HAAR_CASCADE", "KINDS", "BLAZEFACE_SPECS", "BlazeFaceDetector", "BlazeFaceSpec", "Detection",
    "DetectorConfig", "DetectorError", "FaceDetector", "HaarDetector", "blazeface_model_path", "decode_boxes",
    "models_dir", "make_detector", "non_max_suppression", "sigmoid_scores", "ssd_anchors",
]
