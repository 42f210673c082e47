"""Schemathesis over every operation of the gateway's OpenAPI schema, on the real node.

Requests are generated from the schema itself (valid and invalid ones); no answer may be a
5xx, and every answer whose status the schema documents must match the documented body.
Bounded for CI: derandomised (the same examples every run), a few examples per operation,
no shrinking, and a deadline per example. The dialect-aware fuzzers
(``test_fuzz_routes.py``, Flow's in ``test_flow_api.py``) go deeper into each parameter's
parser; this one keeps the schema honest.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.integration.conftest import Catalog

pytestmark = pytest.mark.integration

EXAMPLES = 8
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
CHECKS = [not_a_server_error, response_schema_conformance]
# The session catalog's engine (tests/integration/conftest.py) under each dialect's names.
KNOWN_PATH = {"hashid": "shop1", "collection": "shop1", "service": "photos"}
KNOWN_HEADERS = {"collection-id": "shop1"}


def test_no_5xx_and_answers_match_the_schema(
    catalog: Catalog, gateway_settings: GatewaySettings
) -> None:
    # An app of its own: Schemathesis runs the app's lifespan and shuts it down at the end of
    # the session, which would close the shared gateway fixture's service under later tests.
    app = create_app(gateway_settings, {"shop1": catalog.config})
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @FUZZ
        @given(case=operation.as_strategy(), real=st.booleans())
        def fuzz(case: schemathesis.Case, real: bool) -> None:
            if real:  # half the examples name the test engine, so they get past the lookup
                for name, value in KNOWN_PATH.items():
                    if name in (case.path_parameters or {}):
                        case.path_parameters[name] = value
                case.headers = {**(case.headers or {}), **KNOWN_HEADERS}
            case.call_and_validate(checks=CHECKS)

        try:
            fuzz()
        except Exception as exc:  # one line per failing operation, all of them reported
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:2000]}"
    assert operations >= 20, operations
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
