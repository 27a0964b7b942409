"""An endpoint's parameters read the way FastAPI reads them, with what FastAPI decides anew on
every request decided once per route: for the reads and the post, whose parameters are all
plain.

FastAPI solves an endpoint's parameters per request with generic code: for each field, which
kind it is, its aliases, whether its type is a sequence or a model, the dependency cache and
scopes. On GET /chats/{id} that is ~16% of the instructions of the whole request
(docs/performance.md). Here a route whose every parameter is a plain one gets a plan when it is
built: each parameter's field, where it comes from and its default, each dependency's callable.
A request is then read through the same lookups FastAPI uses (`path_params`, `QueryParams.get`,
`Headers.get`) and validated by the same fields (`ModelField.validate`). A JSON body of one
model (the post's) is read when its media type is plainly `application/json`, through the
route's own request (StrictJsonRequest's `json`), and validated by its field at FastAPI's
location, `("body",)`.

FastAPI's own handler still answers whatever the plan does not cover, so its answers stay its
own: a parameter missing or failing validation (the 422 is FastAPI's, word for word), a body
that is empty, of another media type, not JSON or not valid, dependency overrides, telemetry on
(its spans). tests/api/test_direct_params.py proves both give the same answers over generated
requests.
"""

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.params import Body, Param
from pydantic import BaseModel, Json

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
# Types whose values FastAPI takes from a single string, and whose defaults it would
# deepcopy to no effect.
SCALARS = (int, str, NoneType)
# The one spelling of a JSON body's media type read here; FastAPI reads the others (with
# parameters, `+json` types) and refuses the rest.
JSON_MEDIA_TYPE = "application/json"
BODY_LOC = ("body",)  # where FastAPI points a single, not embedded, body's errors


@dataclass(frozen=True)
class Parameter:
    name: str
    alias: str  # the key in the path's parameters, the query string or the headers
    source: str  # "path", "query" or "header": FastAPI's `in_`
    loc: tuple[str, str]  # where an error would point: (source, alias), as FastAPI's
    field: Any  # FastAPI's ModelField: validate(value, values, loc=...)
    required: bool
    default: Any


@dataclass(frozen=True)
class ModelBody:
    name: str
    field: Any  # FastAPI's ModelField of a pydantic model


@dataclass(frozen=True)
class Plan:
    parameters: tuple[Parameter, ...]
    body: ModelBody | None
    # (the endpoint's parameter, the dependency, the name it takes the request by)
    dependencies: tuple[tuple[str, Callable[..., Awaitable[Any]], str], ...]
    request_name: str | None
    endpoint: Callable[..., Awaitable[Any]]


def plan_of(dependant: Dependant) -> Plan | None:
    """The plan of an endpoint whose parameters are all plain, else None: path, query and
    header parameters of a scalar type, one JSON body of a pydantic model, `Request`, and
    dependencies that take the request alone. Anything else (a form, several body fields,
    cookies, a sequence, an alias choice, a response or background-tasks parameter, a
    generator dependency) keeps FastAPI's handler alone."""
    if not _plain(dependant, as_dependency=False) or not _returns_response(dependant.call):
        return None
    body = None
    if dependant.body_params:
        body = _model_body(dependant.body_params)
        if body is None:
            return None
    parameters: list[Parameter] = []
    for fields in (dependant.path_params, dependant.query_params, dependant.header_params):
        for field in fields:
            info = field.field_info
            if not isinstance(info, Param) or info.validation_alias is not None:
                return None
            if info.validate_default or not _scalar(info.annotation):
                return None
            required = info.is_required()
            if not required and not isinstance(field.default, SCALARS):
                return None
            source = info.in_.value
            loc = (source, field.alias)
            parameters.append(
                Parameter(field.name, field.alias, source, loc, field, required, field.default)
            )
    dependencies = []
    for sub in dependant.dependencies:
        if sub.name is None or sub.call is None or not _plain(sub, as_dependency=True):
            return None
        assert sub.request_param_name is not None  # _plain checked it
        dependencies.append((sub.name, sub.call, sub.request_param_name))
    assert dependant.call is not None
    request_name = dependant.request_param_name
    return Plan(tuple(parameters), body, tuple(dependencies), request_name, dependant.call)


def direct(plan: Plan, fastapi_handler: Handler) -> Handler:
    """A route handler that reads the parameters by `plan`, and leaves to FastAPI's handler
    every request the plan does not cover."""

    async def handler(request: Request) -> Response:
        app = request.app
        if not getattr(app.state, "direct_params", False) or app.dependency_overrides:
            return await fastapi_handler(request)
        values: dict[str, Any] = {}
        for parameter in plan.parameters:
            if parameter.source == "query":
                raw = request.query_params.get(parameter.alias)
            elif parameter.source == "header":
                raw = request.headers.get(parameter.alias)
            else:
                raw = request.path_params.get(parameter.alias)
            if raw is None:
                if parameter.required:
                    return await fastapi_handler(request)  # FastAPI's 422
                values[parameter.name] = parameter.default
                continue
            value, errors = parameter.field.validate(raw, values, loc=parameter.loc)
            if errors:
                return await fastapi_handler(request)  # FastAPI's 422
            values[parameter.name] = value
        if plan.body is not None:
            model = await _valid_body(request, plan.body)
            if model is None:
                return await fastapi_handler(request)  # FastAPI's 400 or 422
            values[plan.body.name] = model
        # After the parameters, which FastAPI checks after them: a dependency that refuses
        # (a 401) still refuses first, as FastAPI's handler runs it again.
        for name, call, request_name in plan.dependencies:
            values[name] = await call(**{request_name: request})
        if plan.request_name is not None:
            values[plan.request_name] = request
        response = await plan.endpoint(**values)
        assert isinstance(response, Response), response  # plan_of checked the annotation
        return response

    return handler


async def _valid_body(request: Request, body: ModelBody) -> BaseModel | None:
    """The request's body as `body`'s model, or None for FastAPI's handler to judge: read
    from the same request, whose body and JSON are kept once read (and never kept when
    reading failed, so that FastAPI meets the same failure)."""
    if request.headers.get("content-type") != JSON_MEDIA_TYPE:
        return None
    try:
        if not await request.body():
            return None
        document = await request.json()
    except Exception:  # FastAPI's handler turns each into its answer (api.errors)
        return None
    model, errors = body.field.validate(document, {}, loc=BODY_LOC)
    return None if errors else model


def _model_body(fields: list[Any]) -> ModelBody | None:
    """The body of an endpoint that takes one pydantic model from JSON as the whole body,
    else None: the one case FastAPI validates with the field alone at `("body",)`."""
    if len(fields) != 1:
        return None
    field = fields[0]
    info = field.field_info
    if type(info) is not Body or getattr(info, "embed", False):  # Form and File are Bodies
        return None
    if any(type(item) is Json for item in info.metadata):
        return None
    annotation = info.annotation
    if not (inspect.isclass(annotation) and issubclass(annotation, BaseModel)):
        return None
    return ModelBody(field.name, field)


def _plain(dependant: Dependant, as_dependency: bool) -> bool:
    """No parameter of the kinds the plan does not read (a body is read by the endpoint's
    plan, never a dependency's); as a dependency, none but the request, and called as a
    coroutine with no concurrency limit of FastAPI's."""
    if (
        (as_dependency and dependant.body_params)
        or dependant.cookie_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or dependant.concurrency is not None
    ):
        return False
    if not as_dependency:
        return True
    call = dependant.call
    # A function, or an instance whose __call__ is (BearerCaller): as FastAPI tells them.
    coroutine = inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        type(call).__call__
    )
    return (
        coroutine
        and dependant.request_param_name is not None
        and not dependant.dependencies
        and not (dependant.path_params or dependant.query_params or dependant.header_params)
    )


def _scalar(annotation: Any) -> bool:
    """Whether values of `annotation` are read from one string: int, str, None, unions and
    Annotated forms of them."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar(get_args(annotation)[0])
    if origin is Union or origin is UnionType:
        return all(_scalar(arg) for arg in get_args(annotation))
    return annotation in SCALARS


def _returns_response(call: Callable[..., Any] | None) -> bool:
    """FastAPI returns a Response from the endpoint as it is; anything else it serialises
    by the response model, which the plan does not do."""
    if call is None or not inspect.iscoroutinefunction(call):
        return False
    returned = inspect.signature(call, eval_str=True).return_annotation
    return inspect.isclass(returned) and issubclass(returned, Response)
