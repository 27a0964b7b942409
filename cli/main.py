"""`chatapi`: the same handlers as the HTTP API, from the command line, printing JSON.

The chat commands act as the local caller, a service: they may do everything, on every
chat, and name a message's author with --author."""

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import timedelta
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError

from api.schemas import (
    ChatDetailResponse,
    ChatListResponse,
    ChatResponse,
    HistoryResponse,
    MessageResponse,
)
from cli.closed_stdout import exit_quietly_on_closed_stdout
from cli.errors import DATABASE_ERRORS, UnsupportedConfiguration, first_line
from cli.follow import follow
from cli.healthcheck import is_ready
from cli.serve import serve
from cli.terminal import print_line
from cli.worker import is_healthy, pending_jobs, run_worker
from commands.create_chat import CreateChat
from commands.delete_chat import DeleteChat
from commands.post_message import PostMessage
from domain.errors import IdempotencyKeyReused, InvalidInput, NotFound, ResumePointAhead
from domain.principals import LOCAL
from domain.rules import DEFAULT_LIMIT
from infrastructure import migrations
from infrastructure.api_keys import NoPepper
from infrastructure.container import Container
from infrastructure.rebuild import rebuild_read_models
from infrastructure.schema import NOT_MIGRATED, SchemaNotMigrated
from infrastructure.settings import problems, shown_url
from queries.get_chat import GetChat
from queries.get_history import GetHistory
from queries.get_messages_after import GetMessagesAfter, validate_after
from queries.list_chats import ListChats

EXIT_NOT_FOUND = 3
EXIT_INVALID = 2
EXIT_DATABASE = 4
EXIT_UNHEALTHY = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped with Ctrl-C
# The commands that read or write chats: each needs the schema this code expects.
DATABASE_COMMANDS = frozenset(
    {
        "create-chat",
        "post",
        "show",
        "list",
        "history",
        "follow",
        "delete",
        "rebuild-read-models",
        "purge-idempotency-keys",
        "keys",
        "worker",
        "jobs",
    }
)
DEFAULT_TOKEN_TTL = 3600


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatapi", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the HTTP API on $HOST:$PORT")
    sub.add_parser("migrate", help="apply database migrations up to the latest")
    sub.add_parser("healthcheck", help="exit 0 when the server on $PORT is ready, 1 if not")
    key_help = "makes a retry safe: the same key and input give the first result again"
    token_help = (
        "a write's consistency_token (printed on stderr): the read shows that write, even "
        "from a replica (READ_DATABASE_URL)"
    )
    create = sub.add_parser("create-chat", help="create a chat")
    create.add_argument("title")
    create.add_argument("--idempotency-key", help=key_help)
    post = sub.add_parser("post", help="post a message to a chat")
    post.add_argument("chat_id", type=int)
    post.add_argument("text")
    post.add_argument("--idempotency-key", help=key_help)
    post.add_argument("--author", help="the user the message is from (default: no one)")
    show = sub.add_parser("show", help="show a chat with its last messages")
    show.add_argument("chat_id", type=int)
    show.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
    show.add_argument("--consistency-token", help=token_help)
    listing = sub.add_parser("list", help="list chats by last activity, newest first")
    listing.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
    listing.add_argument("--cursor", help="the next_cursor of the previous page")
    listing.add_argument("--consistency-token", help=token_help)
    after_help = "a seq: the messages after it (0: from the first); a next_after"
    history = sub.add_parser(
        "history", help="page back (--before) or forward (--after) through a chat's messages"
    )
    history.add_argument("chat_id", type=int)
    history.add_argument("--before", help="a next_before cursor; omit for the newest page")
    history.add_argument("--after", help=after_help)
    history.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
    history.add_argument("--consistency-token", help=token_help)
    follow_help = "print a chat's new messages as JSON lines as they come, until it is deleted"
    following = sub.add_parser("follow", help=follow_help, description=follow_help)
    following.add_argument("chat_id", type=int)
    following.add_argument(
        "--after",
        help=(
            "a seq: first the messages after it (0: every message), then the new ones; "
            "without it, only messages posted from now on, as GET /chats/{id}/events"
        ),
    )
    sub.add_parser("delete", help="delete a chat and its messages").add_argument(
        "chat_id", type=int
    )
    sub.add_parser("rebuild-read-models", help="rebuild every read model from the write model")
    sub.add_parser("purge-idempotency-keys", help="forget expired idempotency keys now")
    worker = sub.add_parser(
        "worker", help="run the background jobs (deleted chats' purges, expiries) until SIGTERM"
    )
    worker.add_argument(
        "--check", action="store_true", help="exit 0 if a worker here turned lately, 1 if not"
    )
    worker.add_argument(
        "--until-idle", action="store_true", help="run the jobs due now, then exit (for cron)"
    )
    sub.add_parser("jobs", help="the background jobs waiting, with their progress")
    keys = sub.add_parser("keys", help="services' API keys").add_subparsers(
        dest="keys_command", required=True
    )
    keys.add_parser(
        "create", help="make a key; prints {id, name, key}, the key only this once"
    ).add_argument("name")
    keys.add_parser("list", help="every key, revoked ones too (never the keys themselves)")
    keys.add_parser("revoke", help="refuse a key from now on").add_argument("id")
    token = sub.add_parser("token", help="user tokens, for development").add_subparsers(
        dest="token_command", required=True
    )
    mint = token.add_parser(
        "mint", help="print a user token signed with AUTH_JWT_SECRET (for development)"
    )
    mint.add_argument("user_id")
    mint.add_argument(
        "--ttl", type=int, default=DEFAULT_TOKEN_TTL, help="seconds it is good for (3600)"
    )
    return parser


def _print(result: BaseModel | dict[str, Any]) -> None:
    # The API's response models render what HTTP would send, byte for byte; the rest is
    # compact JSON too. To a terminal, with the characters it would act on escaped.
    if isinstance(result, BaseModel):
        print_line(result.model_dump_json())
    else:
        print_line(json.dumps(result, ensure_ascii=False, separators=(",", ":")))


def _announce(consistency_token: str | None) -> None:
    """A write's token, on stderr beside the body on stdout (PostgreSQL only)."""
    if consistency_token is not None:
        print(json.dumps({"consistency_token": consistency_token}), file=sys.stderr)


def _fail(message: str, code: int) -> int:
    print(json.dumps({"error": message}), file=sys.stderr)
    return code


def _seq(text: str) -> int:
    """An --after as typed: plain digits only; anything else is refused as a negative seq is."""
    return validate_after(int(text) if text.isascii() and text.isdigit() else -1)


def _run(args: argparse.Namespace, container: Container) -> BaseModel | dict[str, Any] | None:
    settings = container.settings()
    match args.command:
        case "serve":
            serve(container)
            return None
        case "migrate":
            migrations.upgrade(settings.database_url)
            return {"migrated": shown_url(settings.database_url)}  # no credentials
        # What the HTTP API answers, rendered by its response models.
        case "create-chat":
            created = container.create_chat()(
                CreateChat(title=args.title, idempotency_key=args.idempotency_key, principal=LOCAL)
            )
            _announce(created.consistency_token)
            return ChatResponse.from_event(created)
        case "post":
            posted = container.post_message()(
                PostMessage(
                    chat_id=args.chat_id,
                    text=args.text,
                    idempotency_key=args.idempotency_key,
                    author=args.author,
                    principal=LOCAL,
                )
            )
            _announce(posted.consistency_token)
            return MessageResponse.from_event(posted)
        case "show":
            token = args.consistency_token
            chat = container.get_chat()(GetChat(args.chat_id, args.limit, token, principal=LOCAL))
            return ChatDetailResponse.model_validate(chat)
        case "list":
            listing = ListChats(args.limit, args.cursor, args.consistency_token, principal=LOCAL)
            page = container.list_chats()(listing)
            return ChatListResponse.model_validate(page)
        case "history" if args.after is not None:
            if args.before is not None:
                raise InvalidInput("after", "before and after cannot be used together")
            forward = GetMessagesAfter(
                args.chat_id, _seq(args.after), args.limit, args.consistency_token, principal=LOCAL
            )
            return HistoryResponse.model_validate(container.get_messages_after()(forward))
        case "history":
            query = GetHistory(
                args.chat_id, args.before, args.limit, args.consistency_token, principal=LOCAL
            )
            return HistoryResponse.model_validate(container.get_history()(query))
        case "follow":
            follow(container, args.chat_id, None if args.after is None else _seq(args.after))
            return None  # it printed each event as it came
        case "delete":
            _announce(
                container.delete_chat()(
                    DeleteChat(chat_id=args.chat_id, principal=LOCAL)
                ).consistency_token
            )
            return None  # as HTTP's 204: nothing to show
        case "purge-idempotency-keys":
            return {"purged": container.purge_idempotency_keys()}
        case "worker" if args.until_idle:
            return {"steps": container.job_runner().run_until_idle()}
        case "worker":
            run_worker(container)
            return None  # it logged its progress
        case "jobs":
            return {"jobs": [_json_object(job) for job in pending_jobs(container)]}
        case "keys":
            return _keys(args, container)
        case "token":
            _mint(args, container)
            return None  # it printed the token alone, for $(chatapi token mint ...)
        case "rebuild-read-models":
            return {"chat_views": rebuild_read_models(container.write_engine())}
    raise AssertionError(f"unhandled command {args.command}")


def _keys(args: argparse.Namespace, container: Container) -> dict[str, Any] | None:
    api_keys = container.api_keys()
    match args.keys_command:
        case "create":
            info, key = api_keys.create(args.name)
            return {"id": info.id, "name": info.name, "key": key}
        case "list":
            listed = [_json_object(asdict(info)) for info in api_keys.list()]
            return {"keys": listed}
        case _:
            api_keys.revoke(args.id)
            return {"revoked": args.id}


def _mint(args: argparse.Namespace, container: Container) -> None:
    tokens = container.user_tokens()
    if tokens is None:
        raise UnsupportedConfiguration("token mint needs AUTH_JWT_SECRET (at least 32 bytes)")
    if args.ttl <= 0:
        raise InvalidInput("ttl", "--ttl is a number of seconds, at least 1")
    clock = container.clock()
    print(tokens.mint(args.user_id, timedelta(seconds=args.ttl), clock()))  # alone: $(...)


def _json_object(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields as JSON has them: a time as its ISO 8601 text."""
    return {
        name: value.isoformat() if hasattr(value, "isoformat") else value
        for name, value in fields.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    # Every command, its --help and its errors: a closed stdout ends any of them quietly.
    return exit_quietly_on_closed_stdout(partial(_main, argv))


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    container = Container()
    try:
        container.settings()
    except ValidationError as exc:
        return _fail(f"invalid configuration: {problems(exc)}", EXIT_INVALID)
    if args.command == "healthcheck":
        return 0 if is_ready(container.settings()) else EXIT_UNHEALTHY
    if args.command == "worker" and args.check:
        return 0 if is_healthy(container.settings()) else EXIT_UNHEALTHY
    try:
        if args.command in DATABASE_COMMANDS:
            # Up front, as the API does: a missing or older schema fails some commands with
            # a driver error naming a table, and would let others run on the wrong schema.
            container.schema_check().ensure(container.read_engine())
        result = _run(args, container)
    except SchemaNotMigrated:
        return _fail(NOT_MIGRATED, EXIT_DATABASE)
    except NotFound as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    except (InvalidInput, IdempotencyKeyReused, ResumePointAhead) as exc:
        return _fail(str(exc), EXIT_INVALID)
    except (UnsupportedConfiguration, NoPepper) as exc:
        return _fail(str(exc), EXIT_INVALID)
    except DATABASE_ERRORS as exc:
        return _fail(f"database error: {first_line(exc)}", EXIT_DATABASE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        container.shutdown_resources()
    if result is not None:
        _print(result)
    return 0
