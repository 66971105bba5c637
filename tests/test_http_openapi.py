"""Property-based run of device/web/openapi.json against the live server on loopback: no 5xx, every answer documented.

schemathesis generates valid and invalid requests for each operation (random bodies, content types, query
values, path segments) and checks status codes, content types, headers and bodies against the document.
"""

import pytest
from helpers.peers import require_module
from helpers.webserver import api_config, openapi_schema, serving

from emotion_edge.device.contract import EMOTIONS
from emotion_edge.device.daemon.live import LiveState

schemathesis = require_module("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402  (schemathesis depends on hypothesis)
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# The MJPEG stream never ends by design, so a generic client cannot read it; test_status_page.py covers it.
schema = openapi_schema().exclude(path="/preview.mjpg")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture(scope="module")
def server():
    # The preview routes need a live state; an idle one (no camera frames yet) is a state the page must handle too.
    with serving(api_config(max_body_bytes=1_000_000, max_pixels=2_000_000), LiveState(EMOTIONS)) as running:
        yield running


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_every_answer_is_documented(case, server):
    case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=30)


def test_the_readme_error_table_lists_every_documented_error_code():
    import json
    import re
    from pathlib import Path

    from emotion_edge.device.web.app import openapi_document

    document = json.loads(openapi_document())
    codes = set(document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = [line for line in readme.splitlines() if re.match(r"\| (\d{3}|other) \| `", line)]
    listed = {code for line in table for code in re.findall(r"`([a-z_]+)`", line.split("|")[2])}
    assert codes <= listed, f"missing from the README's error table: {sorted(codes - listed)}"
    assert any(line.startswith("| 405 |") for line in table)
