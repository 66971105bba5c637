"""The analyze API over real HTTP on loopback: real face photos, bad uploads, limits, busy, tokens.

Every failure must come back as the documented status and error code, the response must match
device/web/openapi.json, and the server must keep answering afterwards.
"""

import base64
import hashlib
import struct
import threading

import cv2
import httpx
import numpy as np
import pytest
from helpers.peers import free_port
from helpers.photo import astronaut_bgr, png_bomb
from helpers.webserver import api_config, encode, faces_scene, openapi_schema, serving

from emotion_edge.device.config.schema import ConfigError
from emotion_edge.device.detection import DetectorConfig, make_detector
from emotion_edge.device.imaging import WEB_FORMATS, ImagePolicy
from emotion_edge.device.model.classifier import EmotionClassifier
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.web.api import Analyzer, AnalyzerPool, AnalyzeService
from emotion_edge.device.web.app import create_app
from emotion_edge.device.web.config import HttpConfig
from emotion_edge.device.web.results_cache import ResultsCache
from emotion_edge.device.web.server import HttpServer, build_server

MAX_BODY = 2_000_000
MAX_PIXELS = 4_000_000


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return astronaut_bgr()


@pytest.fixture(scope="module")
def server():
    with serving(api_config(max_body_bytes=MAX_BODY, max_pixels=MAX_PIXELS, max_queued=4)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def schema():
    return openapi_schema()


def analyze(client, schema, content=None, files=None, params=None, headers=None) -> httpx.Response:
    response = client.post("/api/v1/analyze", content=content, files=files, params=params, headers=headers)
    response.request.read()  # a form body is streamed; schemathesis wants it whole
    schema["/api/v1/analyze"]["POST"].validate_response(response)  # every answer, good or bad, is documented
    return response


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code and len(body["error"]["message"]) > 10


def test_jpeg_of_a_real_face_gives_the_cli_schema(client, schema, photo):
    jpeg = encode(photo, ".jpg")
    response = analyze(client, schema, content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200
    result = response.json()
    assert result["id"] == "sha256:" + hashlib.sha256(jpeg).hexdigest()
    assert (result["width"], result["height"], result["kind"]) == (512, 512, "image")
    [face] = result["faces"]
    assert face["emotion"] == "happy" and face["confidence"] > 0.5
    assert 150 < face["box"]["x"] < 200 and 40 < face["box"]["y"] < 100
    assert face["box_normalized"]["x"] == pytest.approx(face["box"]["x"] / 512, abs=1e-3)
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=0.03)


def test_png_as_a_form_upload_with_several_faces(client, schema, photo):
    png = encode(faces_scene(photo, 3), ".png")
    response = analyze(client, schema, files={"image": ("group.png", png, "image/png")})
    assert response.status_code == 200
    result = response.json()
    assert result["file"] == "group.png" and (result["width"], result["height"]) == (960, 480)
    xs = sorted(face["box"]["x"] for face in result["faces"])
    assert len(xs) == 3 and xs[0] < 320 <= xs[1] < 640 <= xs[2]  # one face per column
    assert all(face["emotion"] == "happy" for face in result["faces"])


def test_no_face_is_not_an_error(client, schema):
    response = analyze(client, schema, content=encode(np.full((240, 320, 3), 127, np.uint8), ".png"))
    assert response.status_code == 200 and response.json()["faces"] == []


def test_annotated_image_and_crops_are_served_from_the_results_cache(client, schema, photo):
    png = encode(faces_scene(photo, 2, 640, 480), ".png")
    result = analyze(client, schema, content=png, params={"annotate": "1", "crops": "1"}).json()
    key = result["id"].split(":")[1]
    assert result["annotated"] == f"/api/v1/results/{key}/annotated.jpg"
    annotated = client.get(result["annotated"])
    schema["/api/v1/results/{key}/{name}"]["GET"].validate_response(annotated)
    assert annotated.headers["content-type"] == "image/jpeg"
    drawn = cv2.imdecode(np.frombuffer(annotated.content, np.uint8), cv2.IMREAD_COLOR)
    original = faces_scene(photo, 2, 640, 480)
    assert drawn.shape == original.shape and np.abs(drawn.astype(int) - original).mean() > 0.5  # boxes drawn
    crops = [client.get(face["crop"]) for face in result["faces"]]
    assert len(crops) == 2 and all(c.status_code == 200 and c.headers["content-type"] == "image/png" for c in crops)
    assert cv2.imdecode(np.frombuffer(crops[0].content, np.uint8), cv2.IMREAD_COLOR).shape == (112, 112, 3)
    assert_error(client.get(f"/api/v1/results/{key}/face9.png"), 404, "result_not_found")
    assert_error(client.get(f"/api/v1/results/{'0' * 64}/annotated.jpg"), 404, "result_not_found")


def test_inline_outputs_are_data_uris(client, schema, photo):
    result = analyze(client, schema, content=encode(photo, ".jpg"), params={"crops": "true", "inline": "1"}).json()
    prefix = "data:image/png;base64,"
    [face] = result["faces"]
    assert face["crop"].startswith(prefix) and "annotated" not in result
    thumbnail = cv2.imdecode(np.frombuffer(base64.b64decode(face["crop"][len(prefix):]), np.uint8), cv2.IMREAD_COLOR)
    assert thumbnail.shape == (112, 112, 3)


def test_text_file_named_jpg_is_not_an_image(client, schema):
    response = analyze(client, schema, files={"image": ("notes.jpg", b"meeting at ten, bring the Pi", "image/jpeg")})
    assert_error(response, 400, "not_an_image")
    assert "notes.jpg" in response.json()["error"]["message"]


def test_truncated_jpeg_is_a_corrupt_image(client, schema, photo):
    jpeg = encode(photo, ".jpg")
    assert_error(analyze(client, schema, content=jpeg[: len(jpeg) * 2 // 3]), 400, "corrupt_image")


def test_unsupported_format_is_415(client, schema, photo):
    ok, gif = cv2.imencode(".gif", photo) if hasattr(cv2, "IMWRITE_GIF_QUALITY") else (False, None)
    data = gif.tobytes() if ok else b"GIF89a" + struct.pack("<HH", 8, 8) + b"\x00\x00\x00;"
    assert_error(analyze(client, schema, content=data, headers={"Content-Type": "image/jpeg"}), 415, "unsupported_format")


def test_oversized_body_is_refused_by_declared_length_and_while_streaming(client, schema, photo):
    big = b"\xff\xd8" + b"\0" * (MAX_BODY + 10)
    assert_error(analyze(client, schema, content=big), 413, "body_too_large")

    def chunks():  # no Content-Length: the server must count the bytes as they arrive
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"\0" * 65536

    response = client.post("/api/v1/analyze", content=chunks())
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "body_too_large")
    assert analyze(client, schema, content=encode(photo, ".jpg")).status_code == 200  # still serving


@pytest.mark.parametrize("side", [2500, 30000])  # over max_pixels; over Pillow's own bomb ceiling too
def test_decompression_bomb_is_refused_before_decoding(client, schema, side):
    bomb = png_bomb(side, side)
    assert len(bomb) < MAX_BODY
    assert_error(analyze(client, schema, content=bomb), 413, "too_many_pixels")


def test_bad_form_and_parameters(client, schema, photo):
    assert_error(analyze(client, schema, files={"picture": ("a.jpg", encode(photo, ".jpg"), "image/jpeg")}),
                 400, "missing_image")
    assert_error(analyze(client, schema, content=b"--x\r\nnonsense", headers={"Content-Type": "multipart/form-data"}),
                 400, "bad_multipart")
    assert_error(analyze(client, schema, content=encode(photo, ".jpg"), params={"annotate": "maybe"}), 400, "bad_parameter")
    assert_error(client.get("/api/v1/analyze"), 405, "method_not_allowed")
    assert_error(client.get("/api/v1/nothing"), 404, "not_found")


@pytest.mark.parametrize("keep", [0.02, 0.5, -10])  # inside the part's headers, inside the image, before the close
def test_a_truncated_form_is_reported_as_truncated_not_as_a_missing_image(client, schema, photo, keep):
    # Before: a form cut short lost its `image` part (or half of it), and the answer was `missing_image`.
    form = httpx.Request("POST", "http://x/", files={"image": ("a.jpg", encode(photo, ".jpg"), "image/jpeg")})
    body = form.read()
    cut = body[: int(len(body) * keep)] if keep > 0 else body[:keep]
    response = analyze(client, schema, content=cut, headers={"Content-Type": form.headers["Content-Type"]})
    assert_error(response, 400, "truncated_upload")
    assert f"{len(cut):,} bytes" in response.json()["error"]["message"]


class GatedDetector:
    """A real detector that waits at a gate, so a test can hold an analysis in progress."""

    def __init__(self, inner):
        self.inner = inner
        self.prefers_color = inner.prefers_color
        self.entered, self.gate = threading.Event(), threading.Event()

    def detect(self, image):
        self.entered.set()
        assert self.gate.wait(20)
        return self.inner.detect(image)


def test_requests_beyond_the_bound_get_503_with_retry_after(photo):
    detector = GatedDetector(make_detector(DetectorConfig()))
    service = AnalyzeService(AnalyzerPool([Analyzer(detector, EmotionClassifier(packaged_model_path()))], max_queued=0),
                             ResultsCache(1 << 20, 60), ImagePolicy(WEB_FORMATS, MAX_PIXELS), MAX_BODY)
    jpeg = encode(photo, ".jpg")
    with HttpServer(create_app(None, service, None), HttpConfig(port=free_port())) as running, \
            httpx.Client(base_url=running.url, timeout=30) as client:
        first: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: first.append(client.post("/api/v1/analyze", content=jpeg)))
        worker.start()
        assert detector.entered.wait(20)
        busy = client.post("/api/v1/analyze", content=jpeg)
        assert_error(busy, 503, "busy")
        assert int(busy.headers["retry-after"]) >= 1
        detector.gate.set()
        worker.join(30)
        assert first[0].status_code == 200 and len(first[0].json()["faces"]) == 1
        assert client.post("/api/v1/analyze", content=jpeg).status_code == 200  # the slot came back


TOKEN = "s3cret-token-for-tests-0123456789"


def test_off_loopback_without_a_token_refuses_to_start(monkeypatch):
    monkeypatch.delenv("EMOTION_EDGE_HTTP_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="http.bind = '0.0.0.0' serves beyond this machine, which needs a token"):
        build_server(api_config(bind="0.0.0.0"), None)


def test_off_loopback_requires_the_token(tmp_path, schema, photo):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    # Bound to every interface, as on a Pi serving the LAN; the test itself only talks to 127.0.0.1.
    config = api_config(bind="0.0.0.0", token_file=token_file)
    with serving(config) as running, httpx.Client(base_url=f"http://127.0.0.1:{running.port}", timeout=30) as client:
        jpeg = encode(photo, ".jpg")
        assert_error(analyze(client, schema, content=jpeg), 401, "missing_token")
        missing = client.get("/api/v1/openapi.json")
        assert_error(missing, 401, "missing_token")
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert_error(analyze(client, schema, content=jpeg, headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"}),
                     401, "wrong_token")
        assert_error(client.get("/api/v1/openapi.json", params={"token": "nope"}), 401, "wrong_token")
        good = analyze(client, schema, content=jpeg, headers={"Authorization": "Bearer " + TOKEN})
        assert good.status_code == 200 and len(good.json()["faces"]) == 1
        assert client.get("/api/v1/openapi.json", params={"token": TOKEN}).status_code == 200


def test_short_token_is_refused(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("1234")
    with pytest.raises(ConfigError, match="the token is 4 characters; use at least 16"):
        build_server(api_config(token_file=token_file), None)


def test_port_in_use_is_a_clear_error(server):
    config = api_config(port=server.port)
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        build_server(config, None).start()


def test_served_openapi_document_is_the_repository_file(client):
    from pathlib import Path

    repo_file = Path(__file__).parent.parent / "device" / "web" / "openapi.json"
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.content == repo_file.read_bytes()
    assert response.json()["paths"]["/api/v1/analyze"]["post"]["operationId"] == "analyze"


def test_results_cache_is_bounded_in_bytes_and_time():
    now = [0.0]
    cache = ResultsCache(max_bytes=100, ttl_s=10, clock=lambda: now[0])
    assert cache.put("a", "annotated.jpg", b"x" * 60) and cache.put("b", "annotated.jpg", b"y" * 30)
    assert cache.put("c", "face0.png", b"z" * 30)  # 120 bytes: the oldest entry goes
    assert cache.get("a", "annotated.jpg") is None and cache.get("b", "annotated.jpg") == b"y" * 30
    assert cache.size_bytes == 60
    assert not cache.put("d", "annotated.jpg", b"w" * 101)  # larger than the whole cache: inline it instead
    now[0] = 10.5
    assert cache.get("b", "annotated.jpg") is None and cache.size_bytes == 0


def test_api_follows_the_daemons_model_across_a_reload(tmp_path, photo, caplog):
    import shutil

    shipped = packaged_model_path()
    reloaded = tmp_path / "v2" / shipped.name  # as a deploy lays out a new model: the file and its contract
    reloaded.parent.mkdir()
    shutil.copy(shipped, reloaded)
    shutil.copy(shipped.with_suffix(".json"), reloaded.with_suffix(".json"))
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    current = [shipped]
    analyzer = Analyzer(make_detector(DetectorConfig()), EmotionClassifier(shipped))
    service = AnalyzeService(AnalyzerPool([analyzer], max_queued=0), ResultsCache(1 << 20, 60),
                             ImagePolicy(WEB_FORMATS, MAX_PIXELS), MAX_BODY, model_path=lambda: current[0])
    jpeg = encode(photo, ".jpg")
    with HttpServer(create_app(None, service, None), HttpConfig(port=free_port())) as running, \
            httpx.Client(base_url=running.url, timeout=30) as client:
        assert client.post("/api/v1/analyze", content=jpeg).status_code == 200
        assert analyzer.classifier.path == shipped.resolve()
        current[0] = reloaded.resolve()  # the daemon reloaded (SIGHUP)
        assert client.post("/api/v1/analyze", content=jpeg).status_code == 200
        assert analyzer.classifier.path == reloaded.resolve()
        current[0] = broken  # should a reload ever point at a bad file, the API keeps answering with its model
        response = client.post("/api/v1/analyze", content=jpeg)
        assert response.status_code == 200 and len(response.json()["faces"]) == 1
        assert analyzer.classifier.path == reloaded.resolve()
        assert "cannot load the daemon's new model" in caplog.text


def test_keep_alive_responses_are_not_held_by_nagle(server):
    """A reused connection answers at once; with Nagle left on, each response waited ~40 ms for a delayed ACK."""
    import http.client
    import time

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    timings = []
    for _ in range(12):
        started = time.perf_counter()
        connection.request("GET", "/api/v1/openapi.json")
        assert connection.getresponse().read()
        timings.append(time.perf_counter() - started)
    connection.close()
    # The minimum, not the median: with Nagle on, every response waits the ~40 ms delayed ACK, so even the fastest
    # one would; a busy machine only slows some of them.
    assert min(timings[2:]) < 0.030, f"fastest keep-alive response took {min(timings[2:]) * 1000:.0f} ms"
