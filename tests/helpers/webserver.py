"""Helpers for the HTTP server tests: a real server on loopback, real face pictures, OpenAPI validation."""

from __future__ import annotations

import json

import cv2
import numpy as np

from emotion_edge.device.config import DaemonConfig, ModelConfig
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.web.app import openapi_document
from emotion_edge.device.web.config import HttpConfig
from emotion_edge.device.web.server import HttpServer, build_server
from helpers.peers import free_port


def api_config(**http) -> DaemonConfig:
    """The shipped model and a server on a free loopback port; `http` overrides [http] keys."""
    return DaemonConfig(model=ModelConfig(path=packaged_model_path(), threads=1),
                        http=HttpConfig(**{"enabled": True, "port": free_port(), **http}))


def serving(config: DaemonConfig, live=None) -> HttpServer:
    """The server for `config`, not yet started: `with serving(config) as server:` starts and stops it."""
    return build_server(config, live)


def head(photo_bgr: np.ndarray) -> np.ndarray:
    """The astronaut's head with some context (her face is helpers.photo.ASTRONAUT_FACE in the 512x512 photo)."""
    return photo_bgr[40:210, 146:304]


def faces_scene(photo_bgr: np.ndarray, count: int, width: int = 960, height: int = 480) -> np.ndarray:
    """`count` copies of the real face side by side on a plain wall, each in its own column."""
    patch = head(photo_bgr)
    column = width // count
    scale = min(0.8 * column / patch.shape[1], 0.8 * height / patch.shape[0])
    patch = cv2.resize(patch, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.full((height, width, 3), 120, np.uint8)
    y = (height - patch.shape[0]) // 2
    for i in range(count):
        x = i * column + (column - patch.shape[1]) // 2
        canvas[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
    return canvas


def encode(image: np.ndarray, suffix: str) -> bytes:
    ok, buffer = cv2.imencode(suffix, image)
    assert ok
    return buffer.tobytes()


def openapi_schema():
    import schemathesis

    return schemathesis.openapi.from_dict(json.loads(openapi_document()))
