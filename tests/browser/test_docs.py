"""The API explorer, as a browser shows it: every operation of /openapi.json is on the page.

/docs (Swagger UI) and /redoc are loaded in headless Chromium, which runs their scripts, and
the rendered DOM is compared with the app's own OpenAPI document. Their assets must come
from the app itself, not from a CDN.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser.conftest import Browser
from tests.browser.dom import Element, has_class, is_tag, parse

PAGES = ["/docs", "/redoc"]
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# What each kind of asset a page links to must be served as.
ASSET_TYPES = {"script": "javascript", "stylesheet": "text/css", "icon": "image/"}
ABSOLUTE_URL = re.compile(r"https?://[^\s\"'<>]*")


@dataclass(frozen=True, order=True)
class Operation:
    method: str
    path: str
    summary: str
    operation_id: str = ""


@pytest.fixture(scope="session")
def openapi(server_url: str) -> dict[str, Any]:
    response = httpx.get(f"{server_url}/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture(scope="session")
def swagger_ui(browser: Browser, server_url: str) -> Element:
    return parse(browser.rendered_dom(f"{server_url}/docs"))


@pytest.fixture(scope="session")
def redoc(browser: Browser, server_url: str) -> Element:
    return parse(browser.rendered_dom(f"{server_url}/redoc"))


def documented(openapi: dict[str, Any]) -> Iterator[tuple[Operation, list[str]]]:
    """Each operation of the OpenAPI document, with its tags."""
    for path, item in openapi["paths"].items():
        for method, declared in item.items():
            if method not in HTTP_METHODS:
                continue  # a path item's own summary, parameters, ...
            summary = declared.get("summary")
            assert summary, f"{method.upper()} {path} has no summary to show"
            operation = Operation(method, path, summary, declared.get("operationId", ""))
            yield operation, declared.get("tags", [])


def text_of(block: Element, marker: str) -> str:
    """The text of the first element of the block with the marker class, or a placeholder."""
    found = block.find(has_class(marker))
    return found.text() if found else f"<no .{marker}>"


def swagger_ui_operations(page: Element) -> list[Operation]:
    """The operations Swagger UI rendered: one `.opblock` each, per tag it is listed under."""
    rendered = []
    for block in page.find_all(has_class("opblock")):
        path = block.find(lambda element: "data-path" in element.attrs)
        rendered.append(
            Operation(
                method=text_of(block, "opblock-summary-method").lower(),
                path=path.attrs["data-path"] if path else "<no [data-path]>",
                summary=text_of(block, "opblock-summary-description"),
            )
        )
    return sorted(rendered)


def redoc_operations(page: Element) -> list[Operation]:
    """The operations ReDoc rendered: one section each, `data-section-id="operation/<id>"`."""
    rendered = []
    for section in page.find_all(
        lambda element: element.attrs.get("data-section-id", "").startswith("operation/")
    ):
        heading = section.find(is_tag("h2"))
        verb = section.find(has_class("http-verb"))
        path = verb.next_element() if verb else None  # ReDoc shows the path right after
        rendered.append(
            Operation(
                method=verb.text() if verb else "<no .http-verb>",
                path=path.text() if path else "<no path>",
                summary=heading.text() if heading else "<no h2>",
                operation_id=section.attrs["data-section-id"].removeprefix("operation/"),
            )
        )
    return sorted(rendered)


def linked_assets(page: Element) -> list[tuple[str, str]]:
    """(kind, URL) of the scripts, stylesheets and icons the page loads."""
    assets = []
    for element in page.elements():
        if element.tag == "script" and "src" in element.attrs:
            assets.append(("script", element.attrs["src"]))
        elif element.tag == "link" and "href" in element.attrs:
            rel = element.attrs.get("rel", "").split()
            kind = "stylesheet" if "stylesheet" in rel else "icon" if "icon" in rel else "link"
            assets.append((kind, element.attrs["href"]))
    return assets


def is_same_origin(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc  # also rules out //cdn.example/x.js


@pytest.mark.parametrize("page", PAGES)
def test_explorer_pages_load_their_assets_from_the_app(server_url: str, page: str) -> None:
    with httpx.Client(base_url=server_url, timeout=30) as http:
        response = http.get(page)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        assert ABSOLUTE_URL.findall(response.text) == []

        assets = linked_assets(parse(response.text))
        assert "script" in {kind for kind, _ in assets}, assets
        assert [url for _, url in assets if not is_same_origin(url)] == []
        for kind, url in assets:
            asset = http.get(url)
            assert asset.status_code == 200, (url, asset.status_code)
            assert asset.content, url
            assert ASSET_TYPES.get(kind, "") in asset.headers["content-type"], (url, kind)


def test_swagger_ui_renders_every_operation_with_its_summary(
    swagger_ui: Element, openapi: dict[str, Any]
) -> None:
    # Swagger UI lists an operation under each of its tags, untagged ones under "default".
    expected = sorted(
        Operation(operation.method, operation.path, operation.summary)
        for operation, tags in documented(openapi)
        for _ in tags or ["default"]
    )
    assert expected, "the OpenAPI document has no operations"
    assert swagger_ui_operations(swagger_ui) == expected


def test_swagger_ui_shows_no_errors(swagger_ui: Element) -> None:
    errors = swagger_ui.find_all(has_class("errors-wrapper"))
    assert [error.text() for error in errors] == []


def test_redoc_renders_every_operation_with_its_summary(
    redoc: Element, openapi: dict[str, Any]
) -> None:
    expected = sorted(operation for operation, _ in documented(openapi))
    assert expected, "the OpenAPI document has no operations"
    assert redoc_operations(redoc) == expected
