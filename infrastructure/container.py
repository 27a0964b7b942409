"""Wires settings, engines, the unit of work and every handler together.

Scripts use it the same way the API does:
    container = Container()
    container.post_message()(PostMessage(chat_id=1, text="hi"))
"""

from collections.abc import Callable

from dependency_injector import containers, providers

from commands.create_chat import CreateChat, CreateChatHandler, CreateChatResult
from commands.delete_chat import DeleteChat, DeleteChatHandler, DeleteChatResult
from commands.issue_stream_ticket import IssueStreamTicket, IssueStreamTicketHandler, StreamTicket
from commands.post_message import PostMessage, PostMessageHandler, PostMessageResult
from commands.put_member import MemberResult, PutMember, PutMemberHandler
from commands.remove_member import RemoveMember, RemoveMemberHandler, RemoveMemberResult
from infrastructure import database, idempotency, stream_tickets
from infrastructure.api_keys import ApiKeys
from infrastructure.clock import utc_now
from infrastructure.failures import Retrying
from infrastructure.hints import open_publisher
from infrastructure.hints.blocking import open_chat_hints
from infrastructure.job_runner import JobRunner, Pacing
from infrastructure.jobs import JobSettings
from infrastructure.read_targets import ReadTargets
from infrastructure.schema import SchemaCheck
from infrastructure.settings import Settings
from infrastructure.unit_of_work import UnitOfWork
from infrastructure.user_tokens import UserTokens
from queries.follow_chat import FollowChatHandler
from queries.get_chat import GetChatHandler
from queries.get_chat_document import GetChatDocumentHandler
from queries.get_history import GetHistoryDocumentHandler, GetHistoryHandler
from queries.get_member_events import GetMemberEventsHandler
from queries.get_message import GetMessageHandler
from queries.get_messages_after import GetMessagesAfterHandler
from queries.list_chats import ListChatsDocumentHandler, ListChatsHandler
from queries.list_members import ListMembersHandler


def user_tokens_of(settings: Settings) -> UserTokens | None:
    """The verifier of user tokens, or None without AUTH_JWT_SECRET (AUTH_MODE=none)."""
    if settings.auth_jwt_secret is None:
        return None
    return UserTokens(
        settings.auth_jwt_secret.get_secret_value().encode(),
        settings.auth_jwt_audience,
        settings.auth_jwt_issuer,
    )


class Container(containers.DeclarativeContainer):
    settings = providers.Singleton(Settings)

    # Resources: one engine each per process, disposed by container.shutdown_resources().
    write_engine = providers.Resource(database.write_engine, settings)
    read_engine = providers.Resource(database.read_engine, settings)
    clock = providers.Object(utc_now)
    # Live delivery's hints: one Publisher per process; closing it sends its last hints.
    hint_publisher = providers.Resource(open_publisher, settings)
    # Whether the database has been found migrated; the API checks it (on the primary)
    # before serving.
    schema_check = providers.Singleton(SchemaCheck)

    unit_of_work = providers.Factory(
        UnitOfWork,
        engine=write_engine,
        clock=clock,
        idempotency_ttl=settings.provided.idempotency_ttl,
        publisher=hint_publisher,
        tokens=providers.Callable(bool, settings.provided.read_database_url),
    )
    # Each call forgets the expired idempotency keys and returns how many it forgot.
    purge_idempotency_keys = providers.Callable(
        idempotency.purge,
        engine=write_engine,
        clock=clock,
        ttl_seconds=settings.provided.idempotency_ttl,
    )

    # The background jobs' runner (infrastructure/job_runner.py): `chatapi worker`'s loop, or
    # the server's thread with JOBS=in-process.
    job_runner = providers.Factory(
        JobRunner,
        engine=write_engine,
        clock=clock,
        settings=providers.Factory(
            JobSettings,
            batch_size=settings.provided.job_batch_size,
            idempotency_ttl=settings.provided.idempotency_ttl,
            purge_interval=settings.provided.idempotency_purge_interval,
        ),
        pacing=providers.Factory(
            Pacing,
            poll_interval=settings.provided.job_poll_interval,
            batch_pause=settings.provided.job_batch_pause,
        ),
    )

    # Who is asking: user tokens are checked without the database, API keys and stream
    # tickets on the primary.
    user_tokens = providers.Singleton(user_tokens_of, settings)
    api_keys = providers.Singleton(
        ApiKeys, engine=write_engine, pepper=settings.provided.key_pepper, clock=clock
    )
    # redeem_stream_ticket(ticket=..., chat_id=...): the caller it was issued to, once.
    redeem_stream_ticket = providers.Callable(
        stream_tickets.redeem, engine=write_engine, clock=clock
    )

    # Each command runs again, whole, when PostgreSQL rolls it back over a deadlock or a
    # serialization failure (infrastructure/failures.py): for the API, the CLI and scripts.
    create_chat: providers.Factory[Callable[[CreateChat], CreateChatResult]] = providers.Factory(
        Retrying, providers.Factory(CreateChatHandler, uow=unit_of_work.provider, clock=clock)
    )
    post_message: providers.Factory[Retrying[PostMessage, PostMessageResult]] = providers.Factory(
        Retrying,
        providers.Factory(PostMessageHandler, uow=unit_of_work.provider, clock=clock),
    )
    delete_chat: providers.Factory[Callable[[DeleteChat], DeleteChatResult]] = providers.Factory(
        Retrying, providers.Factory(DeleteChatHandler, uow=unit_of_work.provider, clock=clock)
    )
    put_member: providers.Factory[Callable[[PutMember], MemberResult]] = providers.Factory(
        Retrying, providers.Factory(PutMemberHandler, uow=unit_of_work.provider, clock=clock)
    )
    remove_member: providers.Factory[Callable[[RemoveMember], RemoveMemberResult]] = (
        providers.Factory(
            Retrying,
            providers.Factory(RemoveMemberHandler, uow=unit_of_work.provider, clock=clock),
        )
    )
    issue_stream_ticket: providers.Factory[Callable[[IssueStreamTicket], StreamTicket]] = (
        providers.Factory(
            Retrying,
            providers.Factory(IssueStreamTicketHandler, uow=unit_of_work.provider, clock=clock),
        )
    )

    # Where each query reads: a replica (READ_DATABASE_URL), or the primary for a token
    # no replica has replayed in time and while none can be used.
    replicas = providers.Resource(database.replicas, settings)
    read_targets = providers.Factory(
        ReadTargets,
        replicas=replicas,
        primary=read_engine,
        replica_wait=settings.provided.replica_wait,
    )
    get_chat = providers.Factory(GetChatHandler, reads=read_targets)
    # The same chat as GET /chats/{chat_id} sends it: the JSON document, built by the database.
    get_chat_document = providers.Factory(GetChatDocumentHandler, reads=read_targets)
    list_chats = providers.Factory(ListChatsHandler, reads=read_targets)
    list_chats_document = providers.Factory(ListChatsDocumentHandler, reads=read_targets)
    get_history = providers.Factory(GetHistoryHandler, reads=read_targets)
    get_history_document = providers.Factory(GetHistoryDocumentHandler, reads=read_targets)
    get_message = providers.Factory(GetMessageHandler, reads=read_targets)
    list_members = providers.Factory(ListMembersHandler, reads=read_targets)
    get_messages_after = providers.Factory(GetMessagesAfterHandler, reads=read_targets)
    # Event streams read on the primary: the hints that wake them come from its commits,
    # which a replica may not have replayed yet (a stream would wait for the next hint).
    stream_reads = providers.Factory(
        ReadTargets,
        replicas=replicas,
        primary=read_engine,
        replica_wait=settings.provided.replica_wait,
        primary_only=True,
    )
    stream_messages_after = providers.Factory(GetMessagesAfterHandler, reads=stream_reads)
    stream_member_events = providers.Factory(GetMemberEventsHandler, reads=stream_reads)

    # Blocking waits for one chat's hints (chat_hints(chat_id)), for scripts and worker loops:
    # each holds a LISTEN connection of its own on PostgreSQL while it is open.
    chat_hints = providers.Factory(
        open_chat_hints,
        database_url=settings.provided.database_url,
        connect_timeout=settings.provided.db_connect_timeout,
    )
    follow_chat = providers.Factory(
        FollowChatHandler, read=get_messages_after, open_hints=chat_hints.provider
    )
