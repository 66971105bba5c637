"""`emotion-edge analyze`: the device pipeline on image and video files, as JSON.

`analyze_image` produces the JSON for one image and `attach_outputs` its
annotated image and face thumbnails; the HTTP API serves the same functions'
output, so both speak one schema. Only where the outputs go differs: files for
the CLI (`directory_sink`), a results cache or inline data for the API.
Decoding, the image policy, encoding and thumbnails live in imaging.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emotion_edge.device.contract import to_gray
from emotion_edge.device.detection import FaceDetector
from emotion_edge.device.geometry import Box
from emotion_edge.device.imaging import ImageError, ImagePolicy, decode_image, encode_image, face_thumbnail
from emotion_edge.device.model.classifier import EmotionClassifier
from emotion_edge.device.model.metadata import file_sha256
from emotion_edge.device.overlay import OverlayFace, draw_faces
from emotion_edge.device.pipeline import FacePipeline, classify_boxes, detect_boxes, normalized
from emotion_edge.device.sources import VIDEO_SUFFIXES, OpenCVSource, SourceError, SourceExhausted

log = logging.getLogger(__name__)


class AnalyzeError(ImageError):
    """A file that cannot be analyzed for a reason other than its image (unreadable, an output not written, a
    video that does not open); catch `ImageError` for both."""


@dataclass(frozen=True)
class AnalyzedFace:
    box: Box
    probabilities: np.ndarray


def content_id(data: bytes) -> str:
    """A stable id for an image: the same bytes always get the same id."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _box_json(box: Box, shape: tuple[int, ...]) -> dict[str, Any]:
    x, y, w, h = box.as_xywh()
    nx, ny, nw, nh = normalized(box, shape)
    return {"box": {"x": x, "y": y, "w": w, "h": h},
            "box_normalized": {"x": round(nx, 5), "y": round(ny, 5), "w": round(nw, 5), "h": round(nh, 5)}}


def face_json(box: Box, probs: np.ndarray, labels: tuple[str, ...], shape: tuple[int, ...]) -> dict[str, Any]:
    k = int(np.argmax(probs))
    return {**_box_json(box, shape), "probabilities": {name: round(float(p), 5) for name, p in zip(labels, probs)},
            "emotion": labels[k], "confidence": round(float(probs[k]), 5)}


def find_faces(image: np.ndarray, detector: FaceDetector, classifier: EmotionClassifier) -> list[AnalyzedFace]:
    gray = to_gray(image)
    boxes = detect_boxes(detector, image, gray)
    return [AnalyzedFace(b, p) for b, p in zip(boxes, classify_boxes(classifier, gray, boxes))]


def analyze_image(data: bytes, name: str, detector: FaceDetector, classifier: EmotionClassifier,
                  policy: ImagePolicy = ImagePolicy()) -> tuple[dict, np.ndarray, list[AnalyzedFace]]:
    """JSON for one encoded image, plus the decoded image and faces for annotation and crops."""
    image = decode_image(data, name, policy)
    faces = find_faces(image, detector, classifier)
    result = {
        "id": content_id(data), "file": name, "kind": "image", "width": int(image.shape[1]), "height": int(image.shape[0]),
        "model": {"sha256": classifier.sha256, "labels": list(classifier.labels)},
        "faces": [face_json(f.box, f.probabilities, classifier.labels, image.shape) for f in faces],
    }
    return result, image, faces


# Stores one encoded output, given its name ("annotated.jpg", "face0.png", ...) and bytes, and returns how the
# JSON refers to it: a file path (CLI), a URL under the results cache or a data: URI (HTTP API).
ArtifactSink = Callable[[str, bytes], str]


def attach_outputs(result: dict, image: np.ndarray, faces: list[AnalyzedFace], classifier: EmotionClassifier,
                   annotated: ArtifactSink | None, crops: ArtifactSink | None) -> None:
    """Render the annotated image (key `annotated`) and a thumbnail per face (key `crop`) into the result."""
    if annotated is not None:
        overlay = [OverlayFace(f.box.as_xywh(), classifier.labels, f.probabilities) for f in faces]
        result["annotated"] = annotated("annotated.jpg", encode_image(draw_faces(image, overlay), ".jpg"))
    if crops is not None:
        for i, (face, record) in enumerate(zip(faces, result["faces"])):
            thumbnail = face_thumbnail(image, face.box, classifier.contract.face_margin)
            record["crop"] = crops(f"face{i}.png", encode_image(thumbnail, ".png"))


def directory_sink(folder: Path, stem: str) -> ArtifactSink:
    """Outputs as files in `folder`: `<stem>.jpg` for the annotated image, `<stem>-face0.png` ... for crops."""

    def write(name: str, data: bytes) -> str:
        path = folder / (stem + Path(name).suffix if name.startswith("annotated") else f"{stem}-{name}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as exc:  # this file's error record, not the end of the run: the other files go on
            raise AnalyzeError("output_failed", f"cannot write {path} ({exc.strerror or exc}); the output folder "
                                                f"{folder} must be a folder this user can write to") from None
        return str(path)

    return write


def write_outputs(result: dict, image: np.ndarray, faces: list[AnalyzedFace], classifier: EmotionClassifier,
                  annotate_dir: Path | None, crops_dir: Path | None) -> None:
    stem = result["id"].split(":")[1][:16]
    attach_outputs(result, image, faces, classifier,
                   directory_sink(annotate_dir, stem) if annotate_dir is not None else None,
                   directory_sink(crops_dir, stem) if crops_dir is not None else None)


def analyze_video(path: Path, pipeline: FacePipeline, max_frames: int = 0) -> dict:
    """Per frame, every tracked face with its smoothed emotion; ids follow people across frames."""
    labels = pipeline.classifier.labels
    frames = []
    with OpenCVSource(str(path), loop=False) as source:
        while not max_frames or len(frames) < max_frames:
            try:
                frame = source.read(timeout=5.0)
            except SourceExhausted:
                break
            if frame is None:
                break
            reading = pipeline.process(frame)
            frames.append({"index": reading.frame_index, "faces": [
                {"track_id": f.track_id, **face_json(f.box, f.state.probabilities, labels, frame.gray.shape),
                 "emotion": labels[f.state.dominant], "confidence": round(f.state.confidence, 5)}
                for f in reading.faces]})
    return {"id": "sha256:" + file_sha256(path), "file": str(path), "kind": "video",
            "model": {"sha256": pipeline.classifier.sha256, "labels": list(labels)}, "frames": frames}


def error_json(name: str, error: ImageError) -> dict:
    return {"file": name, "error": {"code": error.code, "message": str(error)}}


def analyze_file(path: Path, detector: FaceDetector, classifier: EmotionClassifier, make_pipeline,
                 annotate_dir: Path | None, crops_dir: Path | None, policy: ImagePolicy = ImagePolicy()) -> dict:
    """One file's JSON; a bad file becomes an error record rather than stopping the other files."""
    try:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return analyze_video(path, make_pipeline())
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise AnalyzeError("unreadable", f"{path}: cannot read ({exc.strerror or exc})") from None
        result, image, faces = analyze_image(data, str(path), detector, classifier, policy)
        write_outputs(result, image, faces, classifier, annotate_dir, crops_dir)
        return result
    except ImageError as exc:  # AnalyzeError included
        return error_json(str(path), exc)
    except SourceError as exc:
        return error_json(str(path), AnalyzeError("unreadable_video", f"{path}: {exc}"))


def dumps(results: list[dict]) -> str:
    return json.dumps(results, indent=2)
