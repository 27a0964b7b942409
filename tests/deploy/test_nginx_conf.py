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


# --- Credentials: passed to the app, never logged ----------------------------------------------

# What a log line must never hold: the request line or URI with its query string (an event
# stream's ?ticket=), query arguments, the body, and request headers (Authorization, cookies).
NEVER_LOGGED = re.compile(
    r"\$\{?(request|request_uri|args|query_string|arg_\w+|request_body|http_\w+|cookie_\w+)\}?"
    r"(?!\w)"
)
VARIABLE = re.compile(r"\$\{?(\w+)\}?")
# Levels from the most to the least severe: a level writes itself and every one before it.
ERROR_LEVELS = ["emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"]


def log_formats() -> dict[str, str]:
    """{name: the format's text} of every log_format."""
    formats = {}
    for value in n.values("log_format"):
        name, _, rest = value.partition(" ")
        formats[name] = rest
    return formats


def maps() -> dict[str, str]:
    """{variable a map sets: the text of that map (its source and every value)}."""
    found = re.findall(r"map\s+(\$\w+)\s+\$(\w+)\s*\{", n.without_comments(n.text()))
    return {target: f"{source} {n.block(f'map {source} ${target}')}" for source, target in found}


def logged_sources(text: str) -> str:
    """`text` with the variables it uses that a map sets replaced by where they come from."""
    by_map = maps()
    return VARIABLE.sub(lambda m: by_map.get(m[1], m[0]), text)


def test_the_never_logged_pattern_finds_what_it_must_and_only_that() -> None:
    for bad in ["$request", "${request}", "$request_uri", "$args", "$arg_ticket", "$query_string"]:
        assert NEVER_LOGGED.search(f'"x":"{bad}"'), bad
    for bad in ["$http_authorization", "$http_cookie", "$cookie_session", "$request_body"]:
        assert NEVER_LOGGED.search(f'"x":"{bad}"'), bad
    for fine in ["$request_method", "$request_time", "$request_id", "$remote_addr", "$status"]:
        assert not NEVER_LOGGED.search(f'"x":"{fine}"'), fine


def test_no_log_format_holds_a_credential_or_the_query_string() -> None:
    """No Authorization header (a user token, an API key), no ?ticket= (in the request line,
    the URI or the arguments), directly or through a map."""
    formats = log_formats()
    assert formats, "no log_format"
    for name, text in formats.items():
        for variable in ("$http_authorization", "$request", "$request_uri", "$args"):
            assert not re.search(re.escape(variable) + r"(?!\w)", text), (name, variable)
        assert "$query_string" not in text, name
        assert not NEVER_LOGGED.search(text), (name, NEVER_LOGGED.findall(text))
        # The request id comes from a header, but only when it is a plain token (the map's
        # pattern), so it is no header's value in general: what else it maps from is checked.
        sources = logged_sources(text).replace("$http_x_request_id", "")
        assert not NEVER_LOGGED.search(sources), (name, NEVER_LOGGED.findall(sources))


def test_every_access_log_uses_one_of_these_formats() -> None:
    """Never nginx's predefined `combined`, which logs $request (the query string too)."""
    formats = log_formats()
    access_logs = n.values("access_log")
    assert access_logs, "no access_log: nginx would write `combined` lines to logs/access.log"
    for value in access_logs:
        words = value.split()
        assert words == ["off"] or (len(words) >= 2 and words[1] in formats), value


def test_event_streams_write_no_error_lines_which_quote_their_ticket() -> None:
    """nginx's error lines quote the request line, ?ticket= included: a stream's location
    writes only critical ones."""
    level = n.directive("error_log", n.block(EVENTS)).split()[-1]
    assert ERROR_LEVELS.index(level) <= ERROR_LEVELS.index("crit"), level


def test_the_authorization_header_goes_to_the_app_untouched() -> None:
    config = n.text()
    assert n.values("proxy_pass_request_headers") in ([], ["on"])
    for value in n.values("proxy_set_header", config):
        assert value.split()[0].lower() != "authorization", value
    for location in ("location /", EVENTS):
        assert n.directive("proxy_pass", n.block(location)) == "http://chatapi"


# --- Headers of every answer, and the streams' own limit ---------------------------------------

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "\"frame-ancestors 'none'\"",
}


def locations() -> list[str]:
    """The inside of every location block."""
    config = n.without_comments(n.text())
    headers = re.findall(r"^\s*(location\s[^{]*?)\s*\{", config, re.MULTILINE)
    return [n.block(header.strip()) for header in headers]


def map_entries(inside: str) -> dict[str, str]:
    """{source value: result} of a map's inside (`volatile;` and the like left out)."""
    return dict(re.findall(r"^\s*(\S+)\s+(\S+);", inside, re.MULTILINE))


def test_every_answer_gets_the_security_headers_from_the_server_level_only() -> None:
    """add_header at the server level, `always` (errors too), and in no location: a location
    with an add_header of its own would inherit none of the server's (nginx's rule)."""
    server = n.own(n.block("server"))
    added = {
        value.split(" ", 1)[0]: value.split(" ", 1)[1] for value in n.values("add_header", server)
    }
    for name, value in SECURITY_HEADERS.items():
        assert added.get(name) == f"{value} always", (name, added)
        # The app's own are replaced, so that none comes twice.
        assert name in n.values("proxy_hide_header", server), name
    assert all(value.endswith(" always") for value in added.values()), added
    found = locations()
    assert len(found) >= 9, found
    for location in found:
        assert not n.values("add_header", location), location
        assert not n.values("proxy_hide_header", location), location
    assert n.directive("server_tokens") == "off"


def test_nginxs_own_pages_get_a_request_id_and_retry_after_from_the_maps() -> None:
    """The pages error_page sends to, and only they (a client cannot ask for them: internal),
    are what the maps give a request id; 429 and 503 a Retry-After."""
    pages = {page.split()[-1] for page in n.values("error_page", n.own(n.block("server")))}
    own_id = n.block("map $uri $chatapi_own_request_id")
    entries = map_entries(own_id)
    assert entries.pop("default") == '""'
    assert entries == dict.fromkeys(pages, "$chatapi_request_id"), entries
    retry = map_entries(n.block("map $uri $chatapi_retry_after"))
    assert retry == {"/_nginx/429": "1", "/_nginx/503": "2", "default": '""'}, retry
    for block in (own_id, n.block("map $uri $chatapi_retry_after")):
        assert n.values("volatile", block) == [""]  # read after the error_page's redirect
    server = n.own(n.block("server"))
    assert "X-Request-ID $chatapi_own_request_id always" in n.values("add_header", server)
    assert "Retry-After $chatapi_retry_after always" in n.values("add_header", server)


def test_event_streams_are_capped_per_address_within_the_servers_connection_limit() -> None:
    """A location with a limit_conn inherits none of the server's: the events location says
    the server's again, and its own cap, lower, on a zone keyed by the client's address."""
    server_limits = n.values("limit_conn", n.own(n.block("server")))
    events = n.values("limit_conn", n.block(EVENTS))
    assert set(server_limits) < set(events), (server_limits, events)
    [streams] = [limit for limit in events if limit not in server_limits]
    zone, count = streams.split()
    zones = {
        found.split("zone=")[1].split(":")[0]: found.split()[0]
        for found in n.values("limit_conn_zone")
    }
    assert zones[zone] == "$binary_remote_addr", zones
    connections = int(server_limits[0].split()[1])
    assert 1 < int(count) < connections, (count, connections)
