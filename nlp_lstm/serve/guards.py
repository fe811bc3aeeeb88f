"""ASGI middleware that stands between a client and the routes: body size and read time, the API
key, and the answer to a request cut off by shutdown. Each answers in the API's error format,
`{"error": "..."}`.

    ShutdownGuard -> ApiKey -> BodyLimit -> routes          (outermost first, as `create_app` adds them)
"""

from __future__ import annotations

import asyncio
import hmac
import os
from pathlib import Path

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from nlp_lstm.errors import NlpLstmError

API_KEY_ENV = "NLP_LSTM_API_KEY"
# Probes (load balancers' health checks often cannot send headers), and the page's static files
# (no data; a browser cannot send the key when it opens a page: the page sends it with its calls).
OPEN_PATHS = frozenset({"/health", "/ready", "/", "/page/page.css", "/page/page.js"})


def read_api_key(path: Path | None) -> str | None:
    """The API key from `path` (`--api-key-file`; surrounding whitespace ignored), else from the
    environment variable `NLP_LSTM_API_KEY`, else None (no key: every request is served)."""
    if path is None:
        key = os.environ.get(API_KEY_ENV)
        if key is not None and not key.strip():
            raise NlpLstmError(f"{API_KEY_ENV} is set but empty; set it to a secret, or unset it to serve without a key")
        return key.strip() if key is not None else None
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise NlpLstmError(f"--api-key-file {path} does not exist; write the key into it (one line)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise NlpLstmError(f"cannot read --api-key-file {path} ({getattr(error, 'strerror', None) or error}); "
                           "check the path and its permissions") from None
    if not key:
        raise NlpLstmError(f"--api-key-file {path} is empty; write the key into it (one line)")
    return key


class ApiKey:
    """401 unless the request carries `Authorization: Bearer <key>`; `OPEN_PATHS` stay open.

    The comparison takes the same time wherever the keys first differ (`hmac.compare_digest`), so a
    client cannot learn the key one character at a time from response times.
    """

    def __init__(self, app, *, key: str) -> None:
        self.app = app
        self.key = key.encode("utf-8")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        response = JSONResponse({"error": "missing or wrong API key; send the header Authorization: Bearer <key>"},
                                401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)

    def _allowed(self, scope) -> bool:
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)


class BodyLimit:
    """413 for a body over `max_bytes`, by its Content-Length or as it streams in; 408 for a body
    that does not arrive within `read_timeout` seconds.

    A streamed (chunked) body is counted as it arrives; the handler reading it gets an
    `HTTPException(413)`, which FastAPI passes through to the error handlers, so a client cannot
    make the server buffer more than `max_bytes`. The read deadline covers the whole body, so a
    client that declares a length and then goes silent (or sends a byte now and then) holds its
    connection for `read_timeout` at most; the answer closes the connection.
    """

    def __init__(self, app, *, max_bytes: int, read_timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout

    def _error(self) -> str:
        return f"the request body is over the {self.max_bytes}-byte limit; send fewer or shorter texts per request"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"error": self._error()}, 413)(scope, receive, send)
            return
        received = 0
        deadline: float | None = None
        loop = asyncio.get_running_loop()

        async def limited_receive():
            nonlocal received, deadline
            if deadline is None:  # from the first read of the body on
                deadline = loop.time() + self.read_timeout
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:  # the builtin TimeoutError from Python 3.11 on
                raise HTTPException(408, f"the request body did not arrive within {self.read_timeout:g} s; "
                                         "send the whole body at once", headers={"Connection": "close"}) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._error())
            return message

        await self.app(scope, limited_receive, send)


class ShutdownGuard:
    """503 in the API's format for a request cut off by shutdown, instead of uvicorn's plain-text 500.

    After SIGTERM uvicorn waits `--drain-timeout-s` for the requests in flight, then cancels the
    rest, and logs one line saying how many. A cancelled request that has not started its answer
    gets `{"error": "the server is shutting down; ..."}` here, and the cancellation ends with it
    (re-raising it would make uvicorn log a traceback per request and answer 500 in plain text).
    """

    def __init__(self, app, *, retry_after_s: int) -> None:
        self.app = app
        self.retry_after_s = retry_after_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except asyncio.CancelledError:
            if started:  # half an answer sent: nothing to add; uvicorn closes the connection
                return
            response = JSONResponse({"error": "the server is shutting down; retry on another instance"}, 503,
                                    headers={"Retry-After": str(self.retry_after_s), "Connection": "close"})
            await response(scope, receive, send)
