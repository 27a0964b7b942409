"""The floor: the same stack as `chatapi serve`, with an endpoint that does no work.

One FastAPI app, one plain `def` endpoint (run in the threadpool, as the service runs its
handlers) returning a precomputed JSON body, the bytes of a real `GET /chats/{id}?limit=20`
response of the service, read from $FLOOR_BODY_FILE. Served like `chatapi serve`: one
uvicorn worker in this process, the same loop and HTTP implementation (uvicorn's "auto":
uvloop and httptools when installed, as they are), no access log. Throughput against this
floor is the share of the stack's best that the service keeps once it does its real work.

    FLOOR_BODY_FILE=body.json HOST=127.0.0.1 PORT=8001 python -m bench.floor
"""

import os
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Response


def create_app(body: bytes) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    # The service's route and parameters, so that wrk sends both the very same requests.
    @app.get("/chats/{chat_id}")
    def chat(chat_id: int, limit: int = 20) -> Response:
        return Response(content=body, media_type="application/json")

    return app


def main() -> None:
    body = Path(os.environ["FLOOR_BODY_FILE"]).read_bytes()
    uvicorn.run(
        create_app(body),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8001")),
        loop="auto",  # uvicorn's default, as in `chatapi serve`
        http="auto",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
