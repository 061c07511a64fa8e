"""The whole mounted API, fuzzed from its own OpenAPI document (schemathesis).

Every operation that config/api.py mounts is read from `/api/openapi.json`, so the routers other
apps add are fuzzed with no change here. Each role calls each operation with a real token,
through the real ASGI application, with schema-valid and schema-invalid requests. All of
schemathesis's checks run: no 5xx, only documented statuses and content types, responses
matching their schemas, schema-valid requests accepted, schema-invalid ones refused.

Budget and seed: ARBITER_FUZZ_EXAMPLES per operation, role and mode; ARBITER_FUZZ_SEED (printed
in the session header: set it to replay a failure).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from config.asgi import application
from tests.helpers import FUZZ_EXAMPLES, FUZZ_SEED, fuzz_world

ROLES = ["annotator", "researcher", "admin", "outsider"]

SCHEMA = schemathesis.openapi.from_asgi("/api/openapi.json", application)
# .ok() raises on an operation the loader could not read: a broken document fails collection.
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]  # type: ignore[union-attr]


def test_every_mounted_operation_is_fuzzed() -> None:
    # A router mounted in config/api.py appears in the document, hence here: nothing is listed
    # by hand. This guards against the document (and so the fuzzing) silently going empty.
    paths = {operation.path for operation in OPERATIONS}
    assert {"/api/queues/{queue_id}/labels", "/api/exports/"} <= paths


# The API runs in its own threads: the data it sees must be committed.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_the_api_keeps_its_contract(operation: Any, role: str, users: Any) -> None:
    world = fuzz_world(users)
    headers = {"Authorization": f"Bearer {world.tokens[role]}"}
    names = {parameter.name for parameter in operation.path_parameters}
    real = {name: pk for name, pk in world.ids.items() if name in names}
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        # The same, on rows that exist: past the 404, into the views' own checks.
        *([operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real)] if real else []),
    )

    # An uploaded file is `string/binary` in any schema: which bytes make a valid import, only
    # parsing them can tell (a 400 naming the bad lines). That one check skips uploads.
    uploads = any("multipart/form-data" in (body.media_type or "") for body in operation.body)
    excluded = [positive_data_acceptance] if uploads else []

    @given(case=cases)
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @seed(FUZZ_SEED)
    def fuzz(case: Any) -> None:
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    fuzz()
