"""A chat's members: list them, add or change one, remove one. Each endpoint builds its
command or query; the handlers decide who may (commands/access.py)."""

from typing import Annotated

from fastapi import Path, Request, Response, status

from api.auth import Caller
from api.chats import ChatId, ConsistencyToken, announce_position
from api.handling import container, handle
from api.routing import SlashAgnosticRouter, Utf8JsonRoute
from api.schemas import (
    FORBIDDEN,
    LAST_OWNER,
    MEMBER_NOT_FOUND,
    NOT_FOUND,
    TOO_LARGE,
    UNAUTHORIZED,
    UNAVAILABLE,
    USER_ID_PATTERN,
    WRITE_HEADERS,
    MemberResponse,
    MembersResponse,
    PutMemberRequest,
)
from commands.put_member import PutMember
from commands.remove_member import RemoveMember
from domain.principals import USER_ID_MAX_LENGTH
from queries.list_members import ListMembers

router = SlashAgnosticRouter(
    tags=["members"], responses={**UNAUTHORIZED, **UNAVAILABLE}, route_class=Utf8JsonRoute
)

UserId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=USER_ID_MAX_LENGTH,
        pattern=USER_ID_PATTERN,
        description="The user's id, as the application that owns the users names them.",
        examples=["ann"],
    ),
]


@router.get(
    "/chats/{chat_id}/members/",
    operation_id="listMembers",
    summary="List a chat's members",
    response_description="Every member with their role, in the order they joined.",
    responses=NOT_FOUND,
)
async def list_members(
    chat_id: ChatId,
    request: Request,
    caller: Caller,
    consistency_token: ConsistencyToken = None,
) -> MembersResponse:
    """List the chat's members: for its members and services."""
    handler = container(request).list_members()
    query = ListMembers(chat_id, consistency_token, principal=caller)
    return MembersResponse.model_validate(await handle(request, handler, query))


@router.put(
    "/chats/{chat_id}/members/{user_id}",
    operation_id="putMember",
    summary="Add a member, or change a member's role",
    response_description="The member as they now are.",
    responses={
        200: {"description": "The member's role, changed or set again.", "headers": WRITE_HEADERS},
        201: {
            "model": MemberResponse,
            "description": "The user is now a member.",
            "headers": WRITE_HEADERS,
        },
        **FORBIDDEN,
        **NOT_FOUND,
        **LAST_OWNER,
        **TOO_LARGE,
    },
)
async def put_member(
    chat_id: ChatId,
    user_id: UserId,
    body: PutMemberRequest,
    request: Request,
    response: Response,
    caller: Caller,
) -> MemberResponse:
    """Add the user to the chat with this role (201), or give a member this role (200).

    For the chat's owners and services; a member gets 403. Open streams of the chat get a
    `member.added` (or `member.updated`) event.
    """
    handler = container(request).put_member()
    command = PutMember(chat_id, user_id, body.role, principal=caller)
    member = await handle(request, handler, command, chat_id=chat_id)
    response.status_code = status.HTTP_201_CREATED if member.added else status.HTTP_200_OK
    announce_position(response, member.consistency_token)
    return MemberResponse.model_validate(member)


@router.delete(
    "/chats/{chat_id}/members/{user_id}",
    operation_id="removeMember",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a member (or leave a chat)",
    response_class=Response,
    responses={
        204: {"description": "The user is no longer a member.", "headers": WRITE_HEADERS},
        **FORBIDDEN,
        **MEMBER_NOT_FOUND,
        **LAST_OWNER,
        **TOO_LARGE,
    },
)
async def remove_member(
    chat_id: ChatId, user_id: UserId, request: Request, response: Response, caller: Caller
) -> None:
    """Remove the user from the chat: owners and services remove anyone, a member only
    themself (leaving). The user's open streams of the chat get `member.removed` and end."""
    handler = container(request).remove_member()
    command = RemoveMember(chat_id, user_id, principal=caller)
    removed = await handle(request, handler, command, chat_id=chat_id)
    announce_position(response, removed.consistency_token)
