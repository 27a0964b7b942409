"""deploy/nginx.conf agrees with the app it fronts: its limits, timeouts and request ids.

What the file does to real clients is tested by tests/proxy, with nginx running it; these
check, without nginx, the values that must follow the app's own.
"""

import inspect
import json
import re

import uvicorn

from api.request_log import ACCEPTED_ID
from infrastructure.settings import Settings
from tests.deploy import nginx_conf as n

EVENTS = "location ~ ^/chats/[0-9]+/events/?$"


def test_the_body_limit_is_the_apps_and_so_is_its_413() -> None:
    max_body_size = Settings().max_body_size
    assert n.size(n.directive("client_max_body_size")) == max_body_size
    # The whole body fits the buffer: never written to a temporary file.
    assert n.size(n.directive("client_body_buffer_size")) >= max_body_size
    refusal = n.directive("return", n.block("location = /_nginx/413"))
    status, _, body = refusal.partition(" ")
    assert status == "413"
    assert json.loads(body.strip("'")) == {
        "detail": f"request body larger than {max_body_size} bytes"
    }


def test_every_answer_of_nginx_itself_is_json_with_a_detail() -> None:
    pages = n.values("error_page", n.own(n.block("server")))
    assert pages, "no error pages"
    for page in pages:
        uri = page.split()[-1]
        location = n.block(f"location = {uri}")
        assert n.values("internal", location) == [""], uri
        assert n.directive("default_type", location) == "application/json", uri
        body = n.directive("return", location).split(" ", 1)[1]
        assert isinstance(json.loads(body.strip("'"))["detail"], str), uri


def test_the_request_ids_nginx_passes_on_are_those_the_app_accepts() -> None:
    pattern = n.block("map $http_x_request_id $chatapi_request_id").split('"')[1]
    assert pattern == f"~^{ACCEPTED_ID.pattern}$"
    passed_on = n.values("proxy_set_header", n.own(n.block("server")))
    assert "X-Request-ID $chatapi_request_id" in passed_on


def test_event_streams_pass_unbuffered_and_outlast_the_heartbeat() -> None:
    events = n.block(EVENTS)
    assert re.fullmatch(EVENTS.split()[2], "/chats/12/events/")
    assert n.directive("proxy_buffering", events) == "off"
    assert n.seconds(n.directive("proxy_read_timeout", events)) >= 3 * Settings().stream_heartbeat


def test_upstream_connections_are_kept_alive_but_not_past_uvicorns_keep_alive() -> None:
    upstream = n.block("upstream chatapi")
    assert int(n.directive("keepalive", upstream)) > 0
    uvicorns = inspect.signature(uvicorn.Config).parameters["timeout_keep_alive"].default
    assert n.seconds(n.directive("keepalive_timeout", upstream)) < uvicorns
    server = n.own(n.block("server"))
    assert n.directive("proxy_http_version", server) == "1.1"
    assert 'Connection ""' in n.values("proxy_set_header", server)


def test_the_app_answers_before_nginx_gives_up_on_it() -> None:
    """The app's own 503 (its statement timeout) reaches the client, not a 504 from here."""
    read_timeout = n.seconds(n.directive("proxy_read_timeout", n.own(n.block("server"))))
    assert read_timeout > Settings().db_statement_timeout


def test_writes_are_limited_more_strictly_than_reads() -> None:
    rates = {
        zone: float(rate.removesuffix("r/s"))
        for zone, rate in re.findall(
            r"zone=(chatapi_\w+):\S+ rate=(\S+)", " ".join(n.values("limit_req_zone"))
        )
    }
    assert rates["chatapi_writes"] < rates["chatapi_reads"], rates
    assert n.directive("limit_req_status") == n.directive("limit_conn_status") == "429"
