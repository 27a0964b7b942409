"""Schemathesis against the app in-process (ASGI, no network), on PostgreSQL.

Settings (tests/fuzz/schemathesis.toml, tests/fuzz/hooks.py): every check, valid and invalid
inputs, a fixed seed.
- Stateless: every operation of the OpenAPI document, through the examples, coverage and
  fuzzing phases, each response checked by `case.call_and_validate()`; the event stream's
  too, read for a moment (schemathesis.toml), each event checked against its schema.
- Stateful: scenarios over the links of the document, declared or inferred by Schemathesis
  (`POST /chats/` gives the `chat_id` of the operations on a chat), each on an empty database;
  this is where `use_after_free` and `ensure_resource_availability` have something to check.
  The event stream is left out of them: it would wait out its timeout at every step.
- Canaries: the app with one answer broken fails the check that must catch it.

`make fuzz` (tests/fuzz/live.py) runs the same against the served app, for several minutes.
"""

import json
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import schemathesis
from dependency_injector import providers
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase
from hypothesis.errors import FlakyStrategyDefinition
from hypothesis.stateful import RULE_MARKER
from schemathesis import Case, GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import AcceptedNegativeData, Failure, FailureGroup, ServerError
from schemathesis.core.result import Ok
from schemathesis.filters import HasAPIOperation
from schemathesis.generation.stateful.state_machine import normalize_name
from schemathesis.openapi.checks import JsonSchemaError, UndefinedStatusCode, UseAfterFree
from schemathesis.specs.openapi.schemas import OpenApiSchema
from starlette.types import ASGIApp, Receive, Scope, Send

from api.app import create_app
from infrastructure.container import Container
from infrastructure.settings import Settings
from tests.fuzz import config

# Per operation, for the fuzzing phase (the examples and coverage phases run in full).
MAX_EXAMPLES = 300
# Scenarios of the stateful phase, each up to `max-steps` calls.
MAX_SCENARIOS = 300
# Enough for each canary to catch its breakage, with a fixed seed.
CANARY_EXAMPLES = 25
# How long each call reads the event stream (schemathesis.toml).
STREAM_SECONDS = 0.25
REPLACED_CHECK = "positive_data_acceptance"  # by one of tests/fuzz/hooks.py
# Stays open by design: fuzzed for a moment per call, and in no scenario (schemathesis.toml).
EVENT_STREAM = "GET /chats/{chat_id}/events"


def documented_schema() -> OpenApiSchema:
    """The app's OpenAPI document; building it touches no database, so it can be done here.

    At import, because `schema.parametrize()` needs it at collection: the lazy loader from a
    fixture (`schemathesis.pytest.from_fixture`, 4.32.5) fails under pytest 9.2 with
    "'Function' object has no attribute '_nodeid'". The cases are sent to the app on
    PostgreSQL (`fuzz_app`), which serves this same document (checked below).
    """
    container = Container()
    container.settings.override(providers.Object(Settings(database_url="sqlite://")))
    document = create_app(container).openapi()
    return schemathesis.openapi.from_dict(document, config=config.load(MAX_EXAMPLES))


schema = documented_schema()


def is_the_stream(ctx: HasAPIOperation) -> bool:
    return bool(ctx.operation.label == EVENT_STREAM)


def is_not_the_stream(ctx: HasAPIOperation) -> bool:
    return not is_the_stream(ctx)


# (`exclude`, not `include`: in Schemathesis 4.32.5 an `include` filter here selects every
# operation.)
@schema.exclude(func=is_the_stream).parametrize()
def test_operation(case: Case[Any], fuzz_app: FastAPI) -> None:
    # The app on the schema, not only on the call: the checks' own probes (a request without
    # the credential, or with a made-up one) go to it too.
    case.operation.schema.app = fuzz_app
    case.call_and_validate(app=fuzz_app)


@schema.exclude(func=is_not_the_stream).parametrize()
def test_event_stream(case: Case[Any], fuzz_app: FastAPI, streamed_chat: int) -> None:
    """The stream as any operation, but with the chat its examples name there: each call
    that opens it reads its first events (or waits out the timeout), each checked."""
    case.operation.schema.app = fuzz_app
    case.call_and_validate(app=fuzz_app)


def served_schema(app: ASGIApp, max_examples: int, only_check: str | None = None) -> OpenApiSchema:
    """The document as `app` serves it, with its requests going to `app`."""
    api = schemathesis.openapi.from_asgi("/openapi.json", app, config=config.load(max_examples))
    if only_check is not None:
        api.config.checks.update(included_check_names=[only_check])
    return api


# Sessions of the stateful phase that may restart with the next seed (see below); more, and
# the run is broken rather than unlucky.
MAX_SESSIONS = 10


def run_state_machine(api: OpenApiSchema, scenarios: int, empty: Callable[[], None]) -> None:
    """The stateful phase: `scenarios` call sequences, each on an empty database.

    As Schemathesis's own runner does it (engine/run/stateful): a session in which Hypothesis
    finds that one sequence of choices drew differently from an earlier one
    (FlakyStrategyDefinition) goes on in a fresh session with the next seed. Schemathesis's
    generation learns from the responses it has seen (which links resolved, which values were
    found missing), state Hypothesis does not know of, so any change in what the app answers
    can make a later scenario draw differently. No failed check is lost to that: each is kept
    as it happens and raised, whatever Hypothesis reports after it.
    """
    machine = api.as_state_machine()
    started: list[None] = []
    failures: list[FailureGroup] = []

    class Fresh(machine):  # type: ignore[misc,valid-type]
        def setup(self) -> None:
            empty()  # and ids start again at 1: a scenario replays as it first ran
            started.append(None)

        def validate_response(
            self, response: Any, case: Case[Any], *args: Any, **kwargs: Any
        ) -> None:
            try:
                super().validate_response(response, case, *args, **kwargs)
            except FailureGroup as failure:
                failures.append(failure)
                raise

    seed = api.config.seed
    for _ in range(MAX_SESSIONS):
        # Scenarios started count Hypothesis's replays too: enough of them, and it is done.
        remaining = scenarios - len(started)
        if remaining <= 0:
            return
        settings = hypothesis.settings(
            api.config.get_hypothesis_settings(phase="stateful"),
            max_examples=remaining,
            # As Schemathesis runs it: a scenario's inputs depend on what the app answered, so
            # a shrunk replay is not the same scenario; and its health checks do not apply.
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        try:
            hypothesis.seed(seed)(Fresh).run(settings=settings)
        except FlakyStrategyDefinition:
            if failures:
                raise failures[0] from None
            seed = None if seed is None else seed + 1
            continue
        assert not failures, failures  # Hypothesis raises a failure it found: never reached
        return
    raise AssertionError(f"{MAX_SESSIONS} sessions, each ended by FlakyStrategyDefinition")


def test_stateful(fuzz_app: FastAPI, empty_database: Callable[[], None]) -> None:
    run_state_machine(served_schema(fuzz_app, MAX_SCENARIOS), MAX_SCENARIOS, empty_database)


def test_the_fuzzed_document_is_the_one_served(fuzz_app: FastAPI) -> None:
    assert fuzz_app.openapi() == schema.raw_schema


def links_of(api: OpenApiSchema, method: str, path: str, status: str) -> dict[str, Any]:
    """Where a response links to, inferred or declared: {"GET /chats/{chat_id}": {name: expr}}."""
    api.as_state_machine()  # adds the inferred links to the document
    paths = api.raw_schema["paths"]
    by_operation_id = {
        operation["operationId"]: f"{verb.upper()} {route}"
        for route, operations in paths.items()
        for verb, operation in operations.items()
        if isinstance(operation, dict) and "operationId" in operation
    }
    found = {}
    for link in paths[path][method.lower()]["responses"][status].get("links", {}).values():
        if "operationRef" in link:
            route, verb = link["operationRef"].removeprefix("#/paths/").rsplit("/", 1)
            target = f"{verb.upper()} {route.replace('~1', '/').replace('~0', '~')}"
        else:
            target = by_operation_id[link["operationId"]]
        parameters = link.get("parameters", {})
        found[target] = {name.split(".")[-1]: value for name, value in parameters.items()}
    return found


def test_a_created_chat_links_to_every_operation_on_a_chat(fuzz_app: FastAPI) -> None:
    """What the stateful phase needs to create a chat and then use it, delete it, use it again."""
    api = served_schema(fuzz_app, MAX_SCENARIOS)
    on_a_chat = sorted(
        f"{verb.upper()} {route}"
        for route, operations in api.raw_schema["paths"].items()
        for verb in operations
        if route.startswith("/chats/{chat_id}") and f"{verb.upper()} {route}" != EVENT_STREAM
    )
    assert len(on_a_chat) >= 3  # GET and DELETE /chats/{chat_id}, POST .../messages/, ...
    links = links_of(api, "POST", "/chats/", "201")
    by_id = {"chat_id": "$response.body#/id"}
    assert {target: links.get(target) for target in on_a_chat} == dict.fromkeys(on_a_chat, by_id)


def fuzzed_operations(api: OpenApiSchema) -> set[str]:
    labels = set()
    for result in api.get_all_operations():
        assert isinstance(result, Ok), result
        labels.add(result.ok().label)
    return labels


def scenario_steps(api: OpenApiSchema) -> set[str]:
    """The operations the stateful phase may call: the target of one of its rules, each rule
    named after its link (or RANDOM) and then its target."""
    machine = api.as_state_machine()
    rules = [name for name, value in vars(machine).items() if hasattr(value, RULE_MARKER)]
    return {
        label
        for label in fuzzed_operations(api)
        if any(rule.endswith(f"_{normalize_name(label)}") for rule in rules)
    }


def test_every_operation_is_fuzzed(fuzz_app: FastAPI) -> None:
    documented = {
        f"{verb.upper()} {route}"
        for route, operations in schema.raw_schema["paths"].items()
        for verb in operations
    }
    assert EVENT_STREAM in documented
    assert fuzzed_operations(schema) == documented
    api = served_schema(fuzz_app, MAX_SCENARIOS)
    assert fuzzed_operations(api) == documented
    # Each for a moment, and never in a scenario, which would wait at every step.
    stream = api[EVENT_STREAM.split()[1]]["GET"]
    assert api.config.request_timeout_for(operation=stream) == STREAM_SECONDS
    assert EVENT_STREAM not in scenario_steps(api)
    assert "POST /chats/{chat_id}/messages/" in scenario_steps(api)


def test_every_check_is_on() -> None:
    load_all_checks()
    checks = schema.config.checks
    off = [name for name in CHECKS.get_all_names() if not checks.get_by_name(name=name).enabled]
    assert off == [REPLACED_CHECK]
    assert "positive_data_acceptance_except_made_up_cursors" in CHECKS.get_all_names()
    assert set(schema.config.generation.modes) == set(GenerationMode)


# Canaries: the app with one answer broken, and the checks that must catch it.

Breakage = Callable[[Scope], tuple[int, object] | None]


class Broken:
    """The app, except for the requests `breakage` answers itself: (status, a JSON body, or
    bytes of an event stream)."""

    def __init__(self, app: ASGIApp, breakage: Breakage) -> None:
        self.app = app
        self.breakage = breakage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the app's own lifespan is already running
            await self.lifespan(receive, send)
            return
        answer = self.breakage(scope)
        if answer is None:
            await self.app(scope, receive, send)
            return
        status, body = answer
        stream = isinstance(body, bytes)
        payload = (
            body if isinstance(body, bytes) else b"" if status == 204 else json.dumps(body).encode()
        )
        headers = [(b"content-length", str(len(payload)).encode())]
        if payload:
            media_type = b"text/event-stream" if stream else b"application/json"
            headers.append((b"content-type", media_type))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    @staticmethod
    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def request_to(method: str, path_prefix: str) -> Callable[[Scope], bool]:
    def matches(scope: Scope) -> bool:
        return bool(scope["method"] == method and scope["path"].startswith(path_prefix))

    return matches


def answering(method: str, path_prefix: str, status: int, body: object) -> Breakage:
    """Answers requests of `method` to paths under `path_prefix` itself; passes on the rest."""
    matches = request_to(method, path_prefix)
    return lambda scope: (status, body) if matches(scope) else None


def nothing(scope: Scope) -> None:
    """Breaks nothing."""


def failures_of_operation(
    app: ASGIApp, method: str, path: str, mode: GenerationMode, check: str
) -> list[Failure]:
    """What one check finds on one operation of `app`, with inputs of one kind."""
    operation = served_schema(app, CANARY_EXAMPLES, only_check=check)[path][method]
    settings = hypothesis.settings(
        max_examples=CANARY_EXAMPLES,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )

    @settings
    @hypothesis.seed(operation.schema.config.seed)
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Case[Any]) -> None:
        case.call_and_validate()

    try:
        fuzz()
    except FailureGroup as found:
        return list(found.exceptions)
    return []


CREATED = {"id": 1, "title": "Weekend plans", "created_at": "2026-11-22T14:10:49.829140Z"}
# A stream whose second event's data lacks the message's seq.
BAD_EVENTS = (
    b"retry: 2000\r\nid: 1\r\nevent: message.posted\r\n"
    b'data: {"id":1,"chat_id":1,"seq":1,"text":"hi","created_at":"2026-11-22T14:10:49Z",'
    b'"author":null}\r\n\r\n'
    b'id: 2\r\nevent: message.posted\r\ndata: {"id":2,"chat_id":1,"text":"hi"}\r\n\r\n'
)
# (check, operation, inputs, breakage, what the check must report)
CANARIES = {
    "a server error": (
        "not_a_server_error",
        ("POST", "/chats/"),
        GenerationMode.POSITIVE,
        answering("POST", "/chats", 500, {"detail": "boom"}),
        ServerError,
    ),
    "a response unlike its schema": (
        "response_schema_conformance",
        ("POST", "/chats/"),
        GenerationMode.POSITIVE,
        answering("POST", "/chats", 201, {"id": 1, "title": "Weekend plans"}),
        JsonSchemaError,
    ),
    "an undeclared status": (
        "status_code_conformance",
        ("GET", "/chats/{chat_id}"),
        GenerationMode.POSITIVE,
        answering("GET", "/chats/", 409, {"detail": "busy"}),
        UndefinedStatusCode,
    ),
    "an event unlike its schema": (
        "response_schema_conformance",
        ("GET", "/chats/{chat_id}/events"),
        GenerationMode.POSITIVE,
        answering("GET", "/chats/", 200, BAD_EVENTS),
        JsonSchemaError,
    ),
    "an accepted invalid input": (
        "negative_data_rejection",
        ("POST", "/chats/"),
        GenerationMode.NEGATIVE,
        answering("POST", "/chats", 201, CREATED),
        AcceptedNegativeData,
    ),
}


@pytest.mark.parametrize("canary", CANARIES.values(), ids=CANARIES.keys())
def test_canary_fails(
    fuzz_app: FastAPI,
    canary: tuple[str, tuple[str, str], GenerationMode, Breakage, type[Failure]],
) -> None:
    check, (method, path), mode, breakage, kind = canary
    failures = failures_of_operation(Broken(fuzz_app, breakage), method, path, mode, check)
    assert failures
    assert all(isinstance(failure, kind) for failure in failures), failures
    # And only for its breakage: the same check on the same inputs finds nothing in the app.
    assert failures_of_operation(Broken(fuzz_app, nothing), method, path, mode, check) == []


def test_canary_a_delete_that_deletes_nothing_fails(
    fuzz_app: FastAPI, empty_database: Callable[[], None]
) -> None:
    broken = Broken(fuzz_app, answering("DELETE", "/chats/", 204, None))
    api = served_schema(broken, CANARY_EXAMPLES, only_check="use_after_free")
    with pytest.raises(FailureGroup) as found:
        run_state_machine(api, CANARY_EXAMPLES, empty_database)
    assert all(isinstance(failure, UseAfterFree) for failure in found.value.exceptions)
    # And only for its breakage: the same scenarios find nothing in the app.
    api = served_schema(Broken(fuzz_app, nothing), CANARY_EXAMPLES, only_check="use_after_free")
    run_state_machine(api, CANARY_EXAMPLES, empty_database)
