"""The OpenAPI document: the committed copy is current, and `musicvid serve` honours it
(schemathesis: generated requests, valid and invalid, give no 5xx and schema-conformant answers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from musicvid_core.api.openapi import openapi

DOC = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def test_committed_openapi_is_current():
    assert json.loads(DOC.read_text()) == openapi(), \
        "docs/openapi.json is stale: python -m musicvid_core.api.openapi > docs/openapi.json"


def test_openapi_names_the_four_routes():
    doc = openapi()
    ops = {(path, method): op["operationId"] for path, item in doc["paths"].items() for method, op in item.items()}
    assert ops == {("/uploads", "post"): "create_upload_url", ("/jobs", "post"): "submit_job",
                   ("/jobs", "get"): "get_user_jobs", ("/jobs/{job_id}", "get"): "get_job_status"}


schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from musicvid_core.settings import Settings  # noqa: E402

SCHEMA = schemathesis.openapi.from_dict(openapi())
EXAMPLES = 10  # per operation; see docs/api.md for the request count this gives
CALLS: list[tuple[str, int]] = []


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from apihelpers import Live

    home = tmp_path_factory.mktemp("schema-home")
    server = Live(Settings(home=home, user="tester", retry_time_scale=0, workers=1, max_input_bytes=10_000_000))
    yield server
    server.close()
    print(f"\nschemathesis: {len(CALLS)} requests, "
          f"{sum(1 for _, s in CALLS if s >= 500)} 5xx, statuses {sorted({s for _, s in CALLS})}")


@pytest.mark.slow
@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_serve_conforms_to_its_schema(case, live):
    # positive_data_acceptance is off: a schema cannot say "an upload of yours that exists" or "within
    # the size limit setting", so schema-valid bodies are rightly 400. Every other check is on,
    # response_schema_conformance and not_a_server_error included.
    response = case.call_and_validate(base_url=live.url, headers={**(case.headers or {}), **live.headers("tester")},
                                      excluded_checks=[schemathesis.checks.positive_data_acceptance])
    CALLS.append((case.operation.label, response.status_code))
    assert response.status_code < 500
