"""The OpenAPI document: FastAPI's, with what its routes cannot declare by themselves.

- The responses and headers that many operations share, in `components` (api/schemas.py
  declares them, the operations name them by `$ref`).
- The schemas no route's model brings: `ErrorResponse`, the event stream's events and their
  data (api/events.py), and the 422's, which FastAPI hard-codes with `detail` optional and
  `ctx` a closed object (generated clients then cannot index `detail`, nor read `ctx`).
- A parameter's description also in its schema: generators read it there (openapi-python-client
  for its docstrings), and a schema of our own (WithJsonSchema) leaves it out.
"""

from collections.abc import Iterator
from copy import deepcopy
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.events import EVENT_KINDS, stream_schemas
from api.schemas import (
    HEADERS,
    RESPONSES,
    SCHEMAS,
    ErrorResponse,
    HTTPValidationError,
    ValidationError,
)

Document = dict[str, Any]
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def install_openapi(app: FastAPI) -> None:
    """Serve the amended document at /openapi.json (and in /docs), built once."""
    generate = app.openapi

    def openapi() -> Document:
        first = app.openapi_schema is None
        document = generate()  # built on the first call, then kept as app.openapi_schema
        if first:
            amend(document)  # in place: what FastAPI keeps is the amended document
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way


def amend(document: Document) -> None:
    """FastAPI's document, with what its routes cannot declare (see above)."""
    components = document.setdefault("components", {})
    components["responses"] = deepcopy(RESPONSES)
    components["headers"] = deepcopy(HEADERS)
    schemas = components.setdefault("schemas", {})
    data = {kind.data for kind in EVENT_KINDS}
    for name, schema in model_schemas(ErrorResponse, *data).items():
        schemas.setdefault(name, schema)  # a route's model, if it is one, as FastAPI put it
    # In place of FastAPI's own (fastapi.openapi.utils), under the names its 422s refer to.
    schemas.update(model_schemas(HTTPValidationError, ValidationError))
    schemas.update(stream_schemas())
    components["schemas"] = dict(sorted(schemas.items()))
    for operation in operations(document):
        for response in operation["responses"].values():
            # FastAPI writes a description beside every `$ref`, which would override the
            # component's own (a Reference Object's description does, in OpenAPI 3.1).
            if "$ref" in response:
                response.pop("description", None)
        for parameter in operation.get("parameters", []):
            if "description" in parameter:
                parameter["schema"].setdefault("description", parameter["description"])


def model_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """The models' JSON schemas (and those they refer to), by their names in the document."""
    _, found = models_json_schema(
        [(model, "serialization") for model in models], ref_template=SCHEMAS + "{model}"
    )
    schemas: dict[str, Any] = found.get("$defs", {})
    return schemas


def operations(document: Document) -> Iterator[Document]:
    for item in document["paths"].values():
        for method, operation in item.items():
            if method in METHODS:
                yield operation
