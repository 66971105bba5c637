"""MediaPipe's BlazeFace (short- and full-range) on LiteRT: SSD anchors, box decoding, letterboxing.

The two models ship in this package's `models/` folder (MediaPipe's, Apache-2.0; `models/README.md` says where
they came from and gives their sha256), so `pip install` alone brings them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotion_edge.device.detection.base import (
    RAW_SCORE_LIMIT,
    Detection,
    DetectorConfig,
    DetectorError,
    _to_detections,
)
from emotion_edge.device.detection.nms import non_max_suppression
from emotion_edge.device.model.litert import dequantize, interpreter_class, quantize, read_tflite

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


def models_dir() -> Path:
    """The folder of the packaged BlazeFace .tflite files (package data beside this module)."""
    return Path(__file__).resolve().parent / "models"


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

    The frame (BGR, as it prefers; a gray one is replicated to three channels)
    is letterboxed (scaled to fit, centred, padded with black) into the model's
    square input so faces keep their aspect, and scaled to [-1, 1]; boxes are
    mapped back to frame pixels.
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
        self._small: np.ndarray | None = None  # the frame resized to the letterbox window, reused frame to frame
        self._small_channels = 0
        self._rgb: np.ndarray | None = None
        self._i420: np.ndarray | None = None  # a YUV frame's planes resized to the letterbox window

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
        self._interpreter.set_tensor(self._input["index"],
                                     quantize(x, self._input["dtype"], *self._input.get("quantization", (0.0, 0))))

    def _output(self, detail: dict) -> np.ndarray:
        return dequantize(self._interpreter.get_tensor(detail["index"])[0], *detail.get("quantization", (0.0, 0)))

    def _window(self, height: int, width: int, channels: int) -> tuple[int, int]:
        """The letterbox window (new_w, new_h) for a height x width frame; re-lays the reused buffers out when it
        (or the frame's format) changes."""
        size = self.spec.input_size
        fit = size / max(height, width)
        new_w, new_h = max(1, min(size, round(width * fit))), max(1, min(size, round(height * fit)))
        if self._small is None or self._small.shape[:2] != (new_h, new_w) or self._small_channels != channels:
            self._small = np.empty((new_h, new_w) if channels == 1 else (new_h, new_w, channels), np.uint8)
            self._small_channels = channels
            self._rgb = np.empty((new_h, new_w, 3), np.uint8)
            self._input_buffer.fill(-1.0)  # black padding, as MediaPipe's letterbox (BORDER_ZERO) feeds it
        return new_w, new_h

    def _fill(self, rgb: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
        """The letterboxed RGB window into the model's input, [0, 255] -> [-1, 1] in place (float32, as before);
        returns (pad_x, pad_y, scale_x, scale_y) in input pixels for a width x height frame."""
        size = self.spec.input_size
        new_h, new_w = rgb.shape[:2]
        pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
        window = self._input_buffer[0, pad_y : pad_y + new_h, pad_x : pad_x + new_w]
        np.multiply(rgb, np.float32(2.0 / 255.0), out=window, dtype=np.float32)
        np.subtract(window, np.float32(1.0), out=window)
        return float(pad_x), float(pad_y), new_w / width, new_h / height

    def _letterbox(self, image: np.ndarray) -> tuple[float, float, float, float]:
        """Fill the input buffer from a gray, BGR or BGRA frame; returns (pad_x, pad_y, scale_x, scale_y) in input
        pixels.

        One small step: the frame is resized straight into a reused uint8 buffer of the letterboxed size (a few
        thousand pixels), and only that is reordered to RGB and scaled into the model's float input. Swapping
        channels commutes with the (per-channel) resize, so this is the input a full-frame BGR-to-RGB conversion
        and a resize would give, without converting the whole frame.
        """
        import cv2

        height, width = image.shape[:2]
        channels = 1 if image.ndim == 2 else image.shape[2]
        new_w, new_h = self._window(height, width, channels)
        interpolation = cv2.INTER_AREA if self.spec.input_size < max(height, width) else cv2.INTER_LINEAR
        small = cv2.resize(image, (new_w, new_h), dst=self._small, interpolation=interpolation)
        code = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}[channels]
        return self._fill(cv2.cvtColor(small, code, dst=self._rgb), width, height)

    def _letterbox_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[float, float, float, float]:
        """Fill the input buffer from a YUV 4:2:0 frame's planes (Y full size, U and V half size), as a Pi camera's
        lores stream gives them: each plane is resized to the letterbox window (a small I420 image) and only that
        is converted to RGB. From a 640x360 stream this reads a sixth of the bytes a 1280x720 colour frame holds."""
        import cv2

        height, width = y.shape
        new_w, new_h = self._window(height, width, 0)  # 0: the I420 layout, which the buffers are re-laid out for
        new_w, new_h = new_w - new_w % 2, new_h - new_h % 2  # I420 needs even sides
        if self._i420 is None or self._i420.shape != (new_h * 3 // 2, new_w) or self._rgb.shape[:2] != (new_h, new_w):
            self._i420 = np.empty((new_h * 3 // 2, new_w), np.uint8)
            self._rgb = np.empty((new_h, new_w, 3), np.uint8)
        i420 = self._i420
        quarter = (new_h // 2) * (new_w // 2)  # the U and V planes' size
        flat = i420.reshape(-1)
        plane_u = flat[new_h * new_w : new_h * new_w + quarter].reshape(new_h // 2, new_w // 2)
        plane_v = flat[new_h * new_w + quarter :].reshape(new_h // 2, new_w // 2)
        cv2.resize(y, (new_w, new_h), dst=i420[:new_h], interpolation=cv2.INTER_AREA)
        cv2.resize(u, (new_w // 2, new_h // 2), dst=plane_u, interpolation=cv2.INTER_AREA)
        cv2.resize(v, (new_w // 2, new_h // 2), dst=plane_v, interpolation=cv2.INTER_AREA)
        return self._fill(cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420, dst=self._rgb), width, height)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a gray frame; a BGR(A) colour frame is also taken and its colour used.

        BlazeFace was trained on colour: on gray input (replicated to RGB) its
        scores are generally lower, so pass the colour frame when there is one.
        """
        image = _checked_image(image)
        if image.size == 0:
            return []
        height, width = image.shape[:2]
        return self._run(self._letterbox(image), width, height)

    def detect_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> list[Detection]:
        """Faces in a YUV 4:2:0 frame given as planes (`y` H x W, `u` and `v` H/2 x W/2); boxes in `y`'s pixels."""
        if y.ndim != 2 or y.dtype != np.uint8 or u.shape != v.shape or u.shape != (y.shape[0] // 2, y.shape[1] // 2):
            raise ValueError(f"detect_yuv() needs uint8 planes Y (H, W) and U, V (H/2, W/2), got {y.shape}, {u.shape}, {v.shape}")
        if min(y.shape) < 2:
            return []
        return self._run(self._letterbox_yuv(y, u, v), y.shape[1], y.shape[0])

    def _run(self, letterbox: tuple[float, float, float, float], width: int, height: int) -> list[Detection]:
        """Invoke on the filled input buffer and map the boxes back through the letterbox into frame pixels."""
        pad_x, pad_y, scale_x, scale_y = letterbox
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
        return _to_detections(pixels, scores, width, height, self.config.min_face)


def _checked_image(image: np.ndarray) -> np.ndarray:
    """A uint8 frame BlazeFace can take: 2-D gray (or H x W x 1), BGR or BGRA; colour is reordered later, on the
    letterboxed copy only."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"detect() needs a uint8 gray (H, W) or BGR (H, W, 3) image, got shape {image.shape} dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        return image.reshape(image.shape[:2])
    return image
