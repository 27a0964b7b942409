from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Select, Update, bindparam, case, insert, select, update

from commands.access import CALLER_IS_MEMBER, LIVE_CHAT
from domain.errors import ChatNotFound, InvalidInput
from domain.events import MessagePosted
from domain.principals import Principal, validate_user_id
from domain.rules import is_possible_id, validate_idempotency_key, validate_text
from infrastructure.clock import Clock
from infrastructure.plans import DEADLINE, IN_TIME, Row, Write
from infrastructure.projections import project_posted
from infrastructure.tables import chats, messages
from infrastructure.types import UTCDateTime, utc
from infrastructure.unit_of_work import UnitOfWork

# Built once: constructing statements per call costs more than running them.
NOW = bindparam("now", type_=UTCDateTime)


# Locks the chat's row (until commit) and takes the chat's next seq and the new message's
# time in one statement: the clock's, unless the chat's previous message is later (the
# clock went back). A post that waited for the lock computes both from the row as the post
# before it committed it.
#
# For a user, the statement finds the chat only if they are one of its members: the check
# costs no round trip of its own, and a non-member's post is the 404 of a missing chat.
def take_seq_and_time(members_only: bool) -> Update:
    chat = LIVE_CHAT
    return (
        update(chats)
        .where(chat & CALLER_IS_MEMBER if members_only else chat)
        .values(
            last_seq=chats.c.last_seq + 1,
            # Not greatest() or max(): SQLite's max() is NULL while the chat has no message.
            last_message_at=case(
                (chats.c.last_message_at > NOW, chats.c.last_message_at), else_=NOW
            ),
        )
        .returning(chats.c.last_seq, chats.c.last_message_at)
    )


def take_and_insert(members_only: bool) -> Insert:
    """take_seq_and_time and the insert as one statement (one round trip fewer), for a post
    with nothing to do between them: no idempotency key to claim. PostgreSQL only: SQLite
    has no UPDATE in WITH."""
    taken = take_seq_and_time(members_only).returning(chats.c.id).cte("taken")
    return (
        insert(messages)
        .from_select(
            ["chat_id", "seq", "text", "created_at", "author"],
            select(
                taken.c.id,
                taken.c.last_seq,
                bindparam("text"),
                taken.c.last_message_at,
                bindparam("author"),
            ),
        )
        .returning(messages.c.id, messages.c.seq, messages.c.created_at)
    )


def post_and_project(members_only: bool) -> Select[tuple[int, int, datetime]]:
    """take_and_insert with its projection (projections.project_posted) as one statement:
    the post and its read models in one round trip, guarded by IN_TIME once the chat's
    row is locked and the message written. PostgreSQL only."""
    inserted = (
        take_and_insert(members_only).returning(messages.c.chat_id, messages.c.text).cte("inserted")
    )
    statement = select(inserted.c.id, inserted.c.seq, inserted.c.created_at).where(IN_TIME)
    for n, projected in enumerate(project_posted(inserted)):
        statement = statement.add_cte(projected.cte(f"projected_{n}"))
    return statement


# By whether the caller is a user (the membership check folded in) or not.
TAKE_SEQ_AND_TIME = {
    members_only: take_seq_and_time(members_only) for members_only in (False, True)
}
POST_AND_PROJECT = {members_only: post_and_project(members_only) for members_only in (False, True)}
INSERT_MESSAGE = insert(messages).returning(messages.c.id)


@dataclass(frozen=True, slots=True)
class PostMessage:
    chat_id: int
    text: str
    # A retry with the same key, chat and text gets the message posted the first time.
    idempotency_key: str | None = None
    # Who wrote it: a user posts as themself (None, or their own id); a service names the
    # user it posts for, or no one.
    author: str | None = None
    principal: Principal = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class PostMessageResult(MessagePosted):
    """The message posted, and whether this call only replayed an earlier one's result."""

    # Not part of equality: a replay is the same message, delivered again.
    replayed: bool = field(default=False, compare=False)
    # A read that brings it back sees this message, even from a replica (infrastructure/
    # consistency.py); None on SQLite.
    consistency_token: str | None = field(default=None, compare=False)


class PostMessageHandler:
    """Appends a message to a chat.

    Posts to one chat are serialised by a lock on the chat's row (the database write lock
    on SQLite), held until commit: the statement that takes it also takes the chat's next
    `seq`, so seqs (and ids) follow commit order without gaps, and the message's
    `created_at`: the clock as the post asks for the lock, or the chat's previous message's
    time if that is later, so it never decreases along seq.
    Posts to different chats do not wait for each other on PostgreSQL.

    A user may post to the chats they are a member of, as themself; a service to any chat.
    """

    def __init__(self, uow: Callable[[], UnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def plan(self, command: PostMessage) -> Write[PostMessageResult] | None:
        """The post as one statement, on PostgreSQL, when it has no idempotency key to claim
        (run on the event loop by the API, infrastructure/loop_database.py); None if it has."""
        post, key = self._checked(command)
        return self._write(post) if key is None else None

    def __call__(self, command: PostMessage) -> PostMessageResult:
        post, key = self._checked(command)
        with self._uow() as uow:
            if key is None and uow.connection.dialect.name == "postgresql":
                posted = uow.run(self._write(post))
            else:
                posted = self._take_then_insert(uow, post, key)
            if not posted.replayed:  # a replay rolls back: its seq was never used
                uow.commit()
            return replace(posted, consistency_token=uow.consistency_token())

    @staticmethod
    def _checked(command: PostMessage) -> tuple["Post", str | None]:
        """The post, its input checked, and its idempotency key."""
        text = validate_text(command.text)
        key = validate_idempotency_key(command.idempotency_key)
        author = author_of(command.principal, command.author)
        if not is_possible_id(command.chat_id):
            raise ChatNotFound(command.chat_id)
        return Post(command.chat_id, text, author, command.principal), key

    def _write(self, post: "Post") -> Write[PostMessageResult]:
        """The post and its projection as one statement (POST_AND_PROJECT)."""
        params = {
            **post.params,
            "now": self._clock(),
            "text": post.text,
            "author": post.author,
            DEADLINE: None,  # the loop's own, in the server's clock, set as it sends it
        }

        def outcome(row: Row | None) -> tuple[MessagePosted, PostMessageResult]:
            if row is None:
                raise ChatNotFound(post.chat_id)
            message_id, seq, created_at = row
            return post.posted(message_id, seq, utc(created_at))

        return Write(POST_AND_PROJECT[post.members_only], params, outcome, "PostMessage")

    def _take_then_insert(
        self, uow: UnitOfWork, post: "Post", key: str | None
    ) -> PostMessageResult:
        statement = TAKE_SEQ_AND_TIME[post.members_only]
        taken = uow.connection.execute(statement, {**post.params, "now": self._clock()}).first()
        if taken is None:
            raise ChatNotFound(post.chat_id)
        seq, created_at = taken
        # The key is claimed under the chat's lock, before the insert: a retry racing the
        # first post waits for the lock, then finds the key and replays, inserting nothing.
        return uow.once(
            post.principal,
            "post_message",
            key,
            post.request,
            PostMessageResult,
            lambda: self._insert(uow, post, seq, created_at),
            chat_id=post.chat_id,
        )

    def _insert(
        self, uow: UnitOfWork, post: "Post", seq: int, created_at: datetime
    ) -> PostMessageResult:
        message_id = uow.connection.execute(
            INSERT_MESSAGE,
            {
                "chat_id": post.chat_id,
                "seq": seq,
                "text": post.text,
                "created_at": created_at,
                "author": post.author,
            },
        ).scalar_one()
        event, posted = post.posted(message_id, seq, created_at)
        uow.record(event)
        return posted


@dataclass(frozen=True, slots=True)
class Post:
    """A post once its input is checked: what the statements need."""

    chat_id: int
    text: str
    author: str | None
    principal: Principal

    def posted(
        self, message_id: int, seq: int, created_at: datetime
    ) -> tuple[MessagePosted, PostMessageResult]:
        """The message once stored: the event to record, and the command's result."""
        fields = (message_id, self.chat_id, seq, self.text, created_at, self.author)
        return MessagePosted(*fields), PostMessageResult(*fields)

    @property
    def members_only(self) -> bool:
        return self.principal.user_id is not None

    @property
    def request(self) -> dict[str, Any]:
        """What makes a retry "the same post": the author only when there is one, so that
        keys stored before authors existed still match their retries."""
        if self.author is None:
            return {"text": self.text}
        return {"text": self.text, "author": self.author}

    @property
    def params(self) -> dict[str, Any]:
        """The chat, and the caller whose membership the statement checks."""
        if self.principal.user_id is None:
            return {"chat_id": self.chat_id}
        return {"chat_id": self.chat_id, "caller": self.principal.user_id}


def author_of(principal: Principal, author: str | None) -> str | None:
    """The message's author: the posting user, or whom a service names (maybe no one)."""
    if principal.user_id is None:
        return None if author is None else validate_user_id(author, "author")
    if author is not None and author != principal.user_id:
        raise InvalidInput("author", "a user posts as themself: author must be their own id")
    return principal.user_id
