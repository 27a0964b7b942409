"""`chatapi`: the same handlers as the HTTP API, from the command line, printing JSON."""

import argparse
import dataclasses
import json
import sys
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from commands.create_chat import CreateChat
from commands.delete_chat import DeleteChat
from commands.post_message import PostMessage
from domain.errors import ChatNotFound, InvalidInput
from domain.rules import DEFAULT_LIMIT
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.rebuild import rebuild_read_models
from infrastructure.settings import Settings
from queries.get_chat import GetChat
from queries.get_history import GetHistory
from queries.list_chats import ListChats

EXIT_NOT_FOUND = 3
EXIT_INVALID = 2
EXIT_DATABASE = 4
EXIT_UNHEALTHY = 1
HEALTHCHECK_TIMEOUT_SECONDS = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatapi", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the HTTP API on $HOST:$PORT")
    sub.add_parser("migrate", help="apply database migrations up to the latest")
    sub.add_parser("healthcheck", help="exit 0 when the server on $PORT is ready, 1 if not")
    key_help = "makes a retry safe: the same key and input give the first result again"
    create = sub.add_parser("create-chat", help="create a chat")
    create.add_argument("title")
    create.add_argument("--idempotency-key", help=key_help)
    post = sub.add_parser("post", help="post a message to a chat")
    post.add_argument("chat_id", type=int)
    post.add_argument("text")
    post.add_argument("--idempotency-key", help=key_help)
    show = sub.add_parser("show", help="show a chat with its last messages")
    show.add_argument("chat_id", type=int)
    show.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
    listing = sub.add_parser("list", help="list chats by last activity, newest first")
    listing.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
    listing.add_argument("--cursor", help="the next_cursor of the previous page")
    history = sub.add_parser("history", help="page back through a chat's messages")
    history.add_argument("chat_id", type=int)
    history.add_argument("--before", help="a next_before cursor; omit for the newest page")
    history.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
    sub.add_parser("delete", help="delete a chat and its messages").add_argument(
        "chat_id", type=int
    )
    sub.add_parser("rebuild-read-models", help="rebuild every read model from the write model")
    sub.add_parser("purge-idempotency-keys", help="forget expired idempotency keys now")
    return parser


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot encode {type(value).__name__}")


def _print(result: Any) -> None:
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = dataclasses.asdict(result)
    print(json.dumps(result, default=_json_default, ensure_ascii=False))


def _fail(message: str, code: int) -> int:
    print(json.dumps({"error": message}), file=sys.stderr)
    return code


# uvicorn's own lines as usual on stderr; the request lines (api.request_log) are JSON
# already, so they go to stdout as they are, in place of uvicorn's access log.
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"},
        "plain": {"format": "%(message)s"},
    },
    "handlers": {
        "default": {"class": "logging.StreamHandler", "formatter": "default"},
        "requests": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "chatapi": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "chatapi.requests": {"handlers": ["requests"], "level": "INFO", "propagate": False},
    },
}


def _serve(settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_config=LOG_CONFIG,
    )


def _healthcheck(settings: Settings) -> int:
    """Exit 0 when the local server is ready; for HEALTHCHECKs in images without curl."""
    url = f"http://127.0.0.1:{settings.port}/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=HEALTHCHECK_TIMEOUT_SECONDS) as response:
            ready = response.status == 200
    except OSError:  # refused, timed out, or an HTTP error status such as 503
        ready = False
    return 0 if ready else EXIT_UNHEALTHY


def _run(args: argparse.Namespace, container: Container) -> Any:
    settings = container.settings()
    match args.command:
        case "serve":
            return _serve(settings)
        case "migrate":
            migrations.upgrade(settings.database_url)
            return {"migrated": settings.database_url.rsplit("@", 1)[-1]}
        case "create-chat":
            return container.create_chat()(
                CreateChat(title=args.title, idempotency_key=args.idempotency_key)
            )
        case "post":
            return container.post_message()(
                PostMessage(
                    chat_id=args.chat_id, text=args.text, idempotency_key=args.idempotency_key
                )
            )
        case "show":
            return container.get_chat()(GetChat(chat_id=args.chat_id, limit=args.limit))
        case "list":
            return container.list_chats()(ListChats(limit=args.limit, cursor=args.cursor))
        case "history":
            return container.get_history()(
                GetHistory(chat_id=args.chat_id, before=args.before, limit=args.limit)
            )
        case "delete":
            return container.delete_chat()(DeleteChat(chat_id=args.chat_id))
        case "purge-idempotency-keys":
            return {"purged": container.idempotency_keys().purge(container.write_engine())}
        case "rebuild-read-models":
            return {"chat_views": rebuild_read_models(container.write_engine())}
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    container = Container()
    try:
        container.settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        return _fail(f"invalid configuration: {problems}", EXIT_INVALID)
    if args.command == "healthcheck":
        return _healthcheck(container.settings())
    try:
        result = _run(args, container)
    except ChatNotFound as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    except InvalidInput as exc:
        return _fail(str(exc), EXIT_INVALID)
    except (DBAPIError, PoolTimeout) as exc:
        # Unreachable, or not migrated yet: the driver's first line says which.
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return _fail(f"database error: {reason}", EXIT_DATABASE)
    finally:
        container.shutdown_resources()
    if result is not None:
        _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
