"""Property-based tests of the operator API with schemathesis, against `/api/openapi.json` of the
running server (uvicorn on an ephemeral port, the bot on a real SQLite file and a real personas
file): for every operation, valid and invalid requests never get a 500, and every answer
(errors included) matches what the document says of it."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from contextlib import contextmanager

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import ServerError
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from tests.api_resources_rig import WRITE, defaults_copy, running_api
from tests.fakes import FakeOutbox

PREFIXES = ("ORCHESTRA_", "ANTHROPIC_", "OPENAI_", "SLACK_", "DISCORD_", "NOTION_")
AUTH = {"authorization": f"Bearer {WRITE}"}
#: Examples per operation and mode: enough to reach every refusal, small enough for the normal run.
EXAMPLES = 25


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith(PREFIXES):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    # crews without crewai (its 501): a generated crew must not start a real CrewAI run
    monkeypatch.setitem(sys.modules, "crewai", None)


def no_server_error(ctx, response, case) -> bool | None:
    """No 5xx, but the crews' documented 501 (crewai not installed) is an answer, not an error."""
    if response.status_code >= 500 and not (response.status_code == 501 and case.path == "/api/crews"):
        raise ServerError(operation=case.operation.label, status_code=response.status_code)
    return None


@contextmanager
def api_in_a_thread(tmp_path):
    """The running API in its own thread and event loop: schemathesis calls it synchronously."""
    ready, stop, box = threading.Event(), None, {}

    async def main():
        nonlocal stop
        stop = asyncio.Event()
        async with running_api(tmp_path, personas_file=defaults_copy(tmp_path)) as (app, client):
            for platform in ("api", "test"):
                if platform not in app.engine.poster.outboxes:
                    app.engine.register_outbox(platform, FakeOutbox())
            box["url"] = str(client.base_url).rstrip("/")
            box["loop"] = asyncio.get_running_loop()
            ready.set()
            await stop.wait()

    def run():
        try:
            asyncio.run(main())
        except BaseException as e:  # noqa: BLE001 - surfaced by the test below
            box["error"] = e
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(60)
    if "error" in box:
        raise box["error"]
    try:
        yield box["url"]
    finally:
        box["loop"].call_soon_threadsafe(stop.set)
        thread.join(30)


def test_every_operation_answers_as_its_schema_says(tmp_path):
    with api_in_a_thread(tmp_path) as url:
        document = httpx.get(f"{url}/api/openapi.json", headers=AUTH).json()
        schema = schemathesis.openapi.from_dict(document)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/api/personas", "/api/personas/{name}", "/api/investigations",
                                                  "/api/investigations/{investigation_id}", "/api/crews",
                                                  "/api/crews/{crew_id}", "/metrics"}
        failures = []
        for op in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                @given(case=op.as_strategy(generation_mode=mode))
                @settings(max_examples=EXAMPLES, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                def check(case):
                    # Not checked: that valid-looking data is accepted (the service's own rules, such as
                    # ranges, colours, the cast, names taken, go beyond the document: 409/422 are
                    # right), and that every schema-violating input is refused (FastAPI's lax
                    # coercion takes "0.5" for a number and a Unix time for a date-time, by design).
                    # Checked: no 5xx, every status documented, every answer matching its schema.
                    case.call_and_validate(base_url=url, headers=AUTH,
                                           excluded_checks=[positive_data_acceptance, negative_data_rejection,
                                                            not_a_server_error],
                                           additional_checks=[no_server_error])

                try:
                    check()
                except Unsatisfiable:
                    pass  # nothing can be invalid here (no parameters, or only free text)
                except Exception as e:  # noqa: BLE001 - collect every operation's failure, then report
                    failures.append(f"{op.method.upper()} {op.path} ({mode.value}): {str(e)[:1500]}")
        assert not failures, "\n\n".join(failures)
