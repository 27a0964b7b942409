"""Schemathesis hooks and checks of both fuzz runs, loaded through `hooks` in schemathesis.toml.

Two behaviours of the contract that a JSON Schema cannot express would otherwise read as
findings; each is handled here as narrowly as it can be (README, Development, says why):

- A `Consistency-Token` drawn from its pattern may end in a newline, which no header can
  carry (see `without_final_newline`): it is sent without it.

- `Idempotency-Key`: a key sent again is answered from its first request, by design (the same
  body gets the first response again, even if that chat has since been deleted; another body
  gets a 422). The generators draw the same few keys over and over (the schema's example, "0",
  ...), so every valid key is made unique per request, as a real client's keys are. Invalid
  keys are sent as generated, and must still be refused. Replays are tested in
  tests/api/test_idempotency.py and tests/integration/test_idempotency.py.
- Opaque cursors (`cursor`, `before`): only the server can tell a cursor it issued from any
  other string, so a made-up one that fits the schema is refused with 422, as documented.
  `positive_data_acceptance` is replaced by `positive_data_acceptance_except_made_up_cursors`,
  the same check except for a 422 that blames the cursor parameter alone.
- `before` and `after` of the history are each valid but exclusive, which parameter schemas
  cannot state: with both, the 422 that blames `after` alone is accepted by the same check.
- The stream's `after` and `Last-Event-ID` may come together (a browser reconnecting to the
  URL it opened), the header not before `after`, which parameter schemas cannot state either:
  with both, the 422 that blames the header alone is accepted by the same check.
- The fuzzing user leaving a chat (`DELETE /chats/{chat_id}/members/<themself>`, allowed once
  another owner is there) makes the chat a missing one to them, by design; the stateful checks
  would read every later 404 as a created resource gone. Such a request removes another user
  instead.
- An integer query parameter may be drawn as a float with no fraction (`after=5.0`: JSON
  Schema's integer admits 5.0), which a query string would carry as "5.0"; a client writes
  an integer in a query as its decimal spelling, the only one the API takes (api/params.py
  refuses the others, "+5" and "5.0" alike, by design): it is sent as 5.
- A message's `author`: any user id for a service, but a user may only name themself (the
  fuzz runs are a user), which the body's schema cannot state: a 422 that blames `author`
  alone is accepted by the same check.
  (A made-up `after` past the chat's end is a 409, which that check accepts as it is.)
"""

import itertools
import json
from typing import Any

import schemathesis
from schemathesis import Case, CheckContext, HookContext, Response
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.fuzz.config import USER

IDEMPOTENCY_KEY = "idempotency-key"
CONSISTENCY_TOKEN = "consistency-token"
KEY_MAX_LENGTH = 255  # as documented: 1..255 visible ASCII characters
CURSOR_PARAMETERS = frozenset({("query", "cursor"), ("query", "before")})
# A user names no one but themself as a message's author.
AUTHOR = frozenset({("body", "author")})
# Paging back and paging forward: either one, never both.
EXCLUSIVE_PARAMETERS = frozenset({"before", "after"})
# A stream's two resume points: the header must not be before the query's.
LAST_EVENT_ID = "last-event-id"

_request_numbers = itertools.count(1)


def is_valid_idempotency_key(value: object) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= KEY_MAX_LENGTH
        and all("!" <= char <= "~" for char in value)
    )


def unique_idempotency_key(key: str, number: int) -> str:
    """The key made unique with a request number, still 1..255 visible ASCII characters."""
    suffix = f".{number}"
    return key[: KEY_MAX_LENGTH - len(suffix)] + suffix


def without_final_newline(value: str) -> str:
    """A header value as HTTP can carry it. The generators follow Python's regular
    expressions, where a pattern's `$` also matches before a final newline, which JSON
    Schema's (ECMA 262) does not: a valid `Consistency-Token` comes with one now and then, and
    a header line cannot hold it (the server then sees an empty value)."""
    return value[:-1] if value.endswith("\n") else value


def as_written(value: object) -> object:
    """A query value as a client writes it: an integral float (5.0) as the integer it is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@schemathesis.hook
def before_call(context: HookContext, case: Case[Any], kwargs: dict[str, Any]) -> None:
    if case.method == "DELETE" and (case.path_parameters or {}).get("user_id") == USER:
        case.path_parameters = {**(case.path_parameters or {}), "user_id": f"not-{USER}"}
    if case.query:
        case.query = {name: as_written(value) for name, value in case.query.items()}
    if case.headers is None:
        return
    for name, value in list(case.headers.items()):
        if name.lower() == IDEMPOTENCY_KEY and is_valid_idempotency_key(value):
            case.headers[name] = unique_idempotency_key(value, next(_request_numbers))
        if name.lower() == CONSISTENCY_TOKEN and isinstance(value, str):
            case.headers[name] = without_final_newline(value)


def blames_only(response: Response, parameters: frozenset[tuple[str, str]]) -> bool:
    """A 422 whose every error is located at one of these parameters."""
    if response.status_code != 422:
        return False
    try:
        errors = json.loads(response.content)["detail"]
    except (ValueError, KeyError, TypeError):
        return False
    if not isinstance(errors, list) or not errors:
        return False
    return all(
        isinstance(error, dict)
        and isinstance(error.get("loc"), list)
        and tuple(error["loc"]) in parameters
        for error in errors
    )


def sends_exclusive_parameters(case: Case[Any]) -> bool:
    return set(case.query or {}) >= EXCLUSIVE_PARAMETERS


def sends_both_resume_points(case: Case[Any]) -> bool:
    headers = {name.lower() for name in case.headers or {}}
    return "after" in (case.query or {}) and LAST_EVENT_ID in headers


@schemathesis.check
def positive_data_acceptance_except_made_up_cursors(
    ctx: CheckContext, response: Response, case: Case[Any]
) -> bool | None:
    """`positive_data_acceptance`, except that a made-up cursor may be refused (with 422), and
    `before` with `after` too, a `Last-Event-ID` before `after`, and another user named as the
    author."""
    if blames_only(response, CURSOR_PARAMETERS) or blames_only(response, AUTHOR):
        return None
    if sends_exclusive_parameters(case) and blames_only(response, frozenset({("query", "after")})):
        return None
    resume_header = frozenset({("header", LAST_EVENT_ID)})
    if sends_both_resume_points(case) and blames_only(response, resume_header):
        return None
    return positive_data_acceptance(ctx, response, case)
