import pytest
from pydantic import ValidationError

from infrastructure.settings import DEFAULT_DATABASE_URL, Settings, problems, shown_url


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "HOST", "PORT", "MAX_BODY_SIZE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///./chatapi.db"
    assert (settings.host, settings.port, settings.max_body_size) == ("127.0.0.1", 8000, 65536)


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://u:p@db:5432/chat")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("MAX_BODY_SIZE", "1024")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg2://u:p@db:5432/chat"
    assert (settings.port, settings.max_body_size) == (9000, 1024)


def test_live_delivery_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKERS", "MAX_STREAMS", "STREAM_SEND_TIMEOUT", "STREAM_HEARTBEAT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.workers == 1
    assert settings.max_streams == 1000
    assert (settings.stream_send_timeout, settings.stream_heartbeat) == (10.0, 15.0)


def test_live_delivery_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKERS", "4")
    monkeypatch.setenv("MAX_STREAMS", "2")
    monkeypatch.setenv("STREAM_SEND_TIMEOUT", "0.5")
    monkeypatch.setenv("STREAM_HEARTBEAT", "0.2")
    settings = Settings()
    assert (settings.workers, settings.max_streams) == (4, 2)
    assert (settings.stream_send_timeout, settings.stream_heartbeat) == (0.5, 0.2)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "nonsense"),
        ("DATABASE_URL", "mysql://u@h/db"),
        ("DATABASE_URL", "postgresql+asyncpg://u@h/db"),
        ("PORT", "0"),
        ("PORT", "http"),
        ("MAX_BODY_SIZE", "-1"),
        ("WORKERS", "0"),
        ("MAX_STREAMS", "0"),
        ("STREAM_SEND_TIMEOUT", "0"),
        ("STREAM_HEARTBEAT", "-1"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    "given",
    ["postgresql://u:p@db:5432/chat", "postgres://u:p@db:5432/chat"],
)
def test_postgresql_urls_are_served_by_psycopg2(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", given)
    assert Settings().database_url == "postgresql+psycopg2://u:p@db:5432/chat"


def test_cors_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORS_ORIGINS", raising=False)
    assert Settings().cors_origins == ()


@pytest.mark.parametrize(
    ("given", "origins"),
    [
        ("", ()),
        ("https://chat.example.com", ("https://chat.example.com",)),
        (
            " https://chat.example.com , http://localhost:5173,",
            ("https://chat.example.com", "http://localhost:5173"),
        ),
        # As browsers send an Origin: lower case, no default port.
        ("HTTPS://Chat.Example.COM:443", ("https://chat.example.com",)),
        ("http://[::1]:8080", ("http://[::1]:8080",)),
        ("*", ("*",)),
    ],
)
def test_cors_origins_are_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch, given: str, origins: tuple[str, ...]
) -> None:
    monkeypatch.setenv("CORS_ORIGINS", given)
    assert Settings().cors_origins == origins


@pytest.mark.parametrize(
    "given",
    [
        "chat.example.com",  # no scheme
        "https://chat.example.com/",  # a path, if only "/": an Origin never has one
        "https://chat.example.com/app",
        "https://chat.example.com?x=1",
        "https://chat.example.com#top",
        "https://user@chat.example.com",
        "ftp://chat.example.com",
        "https://",
        "https://chat.example.com:99999",
        "https://bücher.example",  # browsers send the punycode form
        '["https://chat.example.com"]',  # a list, but not in this setting's syntax
    ],
)
def test_a_cors_origin_that_is_not_an_origin_is_refused(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("CORS_ORIGINS", given)
    with pytest.raises(ValidationError, match="cors_origins"):
        Settings()


DEADLINES = (
    "LIMIT_CONCURRENCY",
    "GRACEFUL_SHUTDOWN_TIMEOUT",
    "THREAD_WAIT_TIMEOUT",
    "REQUEST_TIMEOUT",
    "READY_TIMEOUT",
    "LOCK_TIMEOUT",
    "CHAT_WRITES_IN_FLIGHT",
)


def test_deadline_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*DEADLINES, "MAX_STREAMS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.limit_concurrency, settings.graceful_shutdown_timeout) == (2048, 10)
    assert (settings.thread_wait_timeout, settings.request_timeout) == (2.0, 10.0)
    assert (settings.ready_timeout, settings.lock_timeout) == (2.0, 4.0)
    assert settings.chat_writes_in_flight == 2
    # The second write of a chat in flight may wait for the lock twice; both waits and the
    # wait for its turn fit in the request's deadline.
    waits = settings.thread_wait_timeout + settings.chat_writes_in_flight * settings.lock_timeout
    assert waits <= settings.request_timeout


def test_deadline_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    values = dict(zip(DEADLINES, ("3000", "5", "0.5", "3", "1", "0.25", "1"), strict=True))
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.limit_concurrency, settings.graceful_shutdown_timeout) == (3000, 5)
    assert (settings.thread_wait_timeout, settings.request_timeout) == (0.5, 3.0)
    assert (settings.ready_timeout, settings.lock_timeout) == (1.0, 0.25)
    assert settings.chat_writes_in_flight == 1


@pytest.mark.parametrize("name", DEADLINES)
def test_a_deadline_of_zero_is_refused(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "0")
    with pytest.raises(ValidationError, match=name.lower()):
        Settings()


def test_limit_concurrency_must_leave_room_beside_the_streams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_STREAMS", "1000")
    monkeypatch.setenv("LIMIT_CONCURRENCY", "1000")
    with pytest.raises(ValidationError, match="limit_concurrency"):
        Settings()


def test_reads_go_to_the_database_unless_read_databases_are_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@primary/chat")
    monkeypatch.delenv("READ_DATABASE_URL", raising=False)
    assert Settings().replica_urls == ()
    monkeypatch.setenv("READ_DATABASE_URL", "")  # as compose passes an unset variable
    assert Settings().replica_urls == ()
    monkeypatch.setenv("READ_DATABASE_URL", "postgresql://u:p@replica/chat")
    assert Settings().replica_urls == ("postgresql+psycopg2://u:p@replica/chat",)
    # The primary itself is no replica: its reads are the read engine's.
    monkeypatch.setenv("READ_DATABASE_URL", "postgresql://u:p@primary/chat")
    assert Settings().replica_urls == ()


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://u:p@r1:5433/chat,postgresql://u:p@r2/chat?sslmode=disable",
        "postgresql://u:p@r1:5433,r2/chat?sslmode=disable",
        " postgresql://u:p@r1:5433/chat , postgres://u:p@r2/chat?sslmode=disable",
    ],
)
def test_several_replicas_as_a_list_or_in_the_multi_host_form(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("READ_DATABASE_URL", given)
    first, second = Settings().replica_urls
    assert first.startswith("postgresql+psycopg2://u:p@r1:5433/chat")
    assert second.startswith("postgresql+psycopg2://u:p@r2/chat")
    if "," in given.split("/chat")[0]:
        assert first.endswith("?sslmode=disable")


@pytest.mark.parametrize(
    "given",
    ["mysql://u@replica/chat", "postgresql://u@r1/chat,sqlite:///x.db"],
)
def test_a_read_database_of_no_known_kind_is_refused(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("READ_DATABASE_URL", given)
    with pytest.raises(ValidationError):
        Settings()


# --- a URL's password is never echoed ---------------------------------------------------------

PIECES = ("Alpha7Secret", "Bravo9Secret", "Charlie5Secret")
REFUSED_URLS = [
    pytest.param("chatapi:Alpha7Secret@db/chatapi", id="no-scheme"),
    pytest.param("postgress://u:Alpha7Secret@h/db", id="bad-scheme"),
    pytest.param("postgresql://u:Alpha7Secret@h:99999/db", id="port-99999"),
    pytest.param("postgresql://u:Alpha7Secret@h:0/db", id="port-0"),
    pytest.param("postgresql://u:Alpha7Secret@h:Bravo9Secret/db", id="port-a-word"),
    pytest.param("postgresql://u:Alpha7Secret", id="no-host"),
    pytest.param("postgresql://u:Alpha7Secret@Bravo9Secret@h/db", id="at-in-the-password"),
    pytest.param("postgresql://u:Alpha7Secret@Bravo9Secret:5432@h/db", id="at-port-at"),
    pytest.param("postgresql://u:Alpha7Secret:Bravo9Secret@Charlie5Secret@h/db", id="colon-at"),
    pytest.param("postgresql://u:Alpha7Secret@Bravo9Secret/Charlie5Secret@h/db", id="at-slash"),
    pytest.param("postgresql://u:Alpha7Secret?Bravo9Secret@Charlie5Secret@h/db", id="at-query"),
    pytest.param("postgresql://u:Alpha7Secret%00Bravo9Secret@h/db", id="percent-nul"),
    pytest.param("postgresql://u:Alpha7Secret@h1:5432,h2:5432/db", id="multi-host-ports"),
    pytest.param("postgresql://u:Alpha7Secret@h/a,postgresql://u:Bravo9Secret@h/b", id="list"),
    pytest.param("host=h user=u password=Alpha7Secret dbname=db", id="libpq-keywords"),
    pytest.param(" postgresql://u:Alpha7Secret@h/db", id="leading-space"),
    pytest.param("postgresql://u:Alpha7Secret@[::1/db", id="unclosed-ipv6"),
]
REFUSED_READ_URLS = [
    # Each of these is refused as a replica's URL too; a list, a multi-host URL, or spaces
    # around a URL (each of a list is stripped) are not.
    *(url for url in REFUSED_URLS if url.id not in {"multi-host-ports", "list", "leading-space"}),
    pytest.param("postgresql://u:Alpha7Secret@h1:5432,,h2/db", id="multi-host-empty-host"),
    pytest.param("postgresql://u:Alpha7Secret@h/a, sqlite:///Bravo9Secret.db", id="sqlite"),
    pytest.param("postgresql://u:Alpha7Secret@h1:5432,h2:99999/db", id="multi-host-bad-port"),
    pytest.param("postgresql://u:Alpha7Secret@h/a,postgress://u:Bravo9Secret@h/b", id="bad-list"),
]


def assert_refused_without_a_piece(monkeypatch: pytest.MonkeyPatch, name: str, url: str) -> str:
    monkeypatch.setenv(name, url)
    with pytest.raises(ValidationError) as refused:
        Settings()
    told = f"{refused.value}\n{problems(refused.value)}"
    for piece in PIECES:
        assert piece not in told, told
    assert "Alpha7" not in told, told
    return problems(refused.value)


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_a_refused_database_url_is_never_echoed(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.delenv("READ_DATABASE_URL", raising=False)
    told = assert_refused_without_a_piece(monkeypatch, "DATABASE_URL", url)
    assert told.startswith("DATABASE_URL: "), told


@pytest.mark.parametrize("url", REFUSED_READ_URLS)
def test_a_refused_read_database_url_is_never_echoed(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@primary/chat")
    told = assert_refused_without_a_piece(monkeypatch, "READ_DATABASE_URL", url)
    assert told.startswith("READ_DATABASE_URL: "), told


def test_a_mistyped_scheme_is_named_as_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    told = assert_refused_without_a_piece(
        monkeypatch, "DATABASE_URL", "postgress://u:Alpha7Secret@h/db"
    )
    assert "not postgress://" in told, told


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("postgresql://u:Alpha7Secret%40Bravo9Secret@h/db", "Alpha7Secret%40Bravo9Secret"),
        ("postgresql://u:Alpha7Secret%zz@h/db", "Alpha7Secret%25zz"),
        ("postgresql://u:Alpha7/Secret,Bravo9@h/db", "Alpha7%2FSecret%2CBravo9"),
        ("postgresql://u:Alpha7Secret garbage!#$&@h/db", "Alpha7Secret garbage%21%23%24%26@"),
        ("postgresql://u:Alpha7Secret@h/d%40b", "Alpha7Secret@h/d%40b"),
    ],
)
def test_a_password_written_with_escapes_or_odd_characters_is_kept(
    monkeypatch: pytest.MonkeyPatch, given: str, kept: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", given)
    assert kept in Settings().database_url


def test_a_password_with_slashes_and_commas_in_the_multi_host_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("READ_DATABASE_URL", "postgresql://u:p/w,d@r1:5433,r2/chat")
    assert Settings().replica_urls == (
        "postgresql+psycopg2://u:p%2Fw%2Cd@r1:5433/chat",
        "postgresql+psycopg2://u:p%2Fw%2Cd@r2/chat",
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg2://u:Alpha7Secret@db:5432/chatapi",
            "postgresql+psycopg2://db:5432/chatapi",
        ),
        (
            "postgresql+psycopg2://u@db/chatapi?password=Alpha7Secret&sslmode=require",
            "postgresql+psycopg2://db/chatapi?sslmode=require",
        ),
        ("sqlite:///./chatapi.db", "sqlite:///./chatapi.db"),
    ],
)
def test_a_url_is_shown_without_its_credentials(url: str, shown: str) -> None:
    assert shown_url(url) == shown
