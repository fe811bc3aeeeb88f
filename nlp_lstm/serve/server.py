"""`serve`: listen on a port and run the app with uvicorn until SIGTERM or Ctrl-C, then drain.

Order of start-up, so every mistake a user can make fails fast with one line: check the settings,
bind the port (taken or forbidden -> `NlpLstmError`), load the models, then print the address
(`--port 0` picks a free port, printed here) and hand the listening socket to uvicorn.

Shutdown: on SIGTERM or SIGINT uvicorn stops accepting connections, waits for the requests in
flight (at most `--drain-timeout-s`; the rest get a JSON 503 from `guards.ShutdownGuard`), then ends
the app's lifespan, which drains and joins the batcher threads. uvicorn (>= 0.29) then re-raises the
signal it caught so that the default action runs; the handlers installed around it here make that a
no-op, so a drained server exits 0.

Slow clients: uvicorn closes an idle keep-alive connection after `--timeout-keep-alive`, but waits
for a new connection's first request, and for any request's headers, without end. `TimedH11Protocol`
gives each request's headers `--read-timeout-s` (from the connection's start, or from the previous
answer); `guards.BodyLimit` gives its body as long again.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import os
import signal
import socket
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.serve.app import ServeSettings, create_app

# oneDNN (torch's CPU LSTM) keeps one compiled primitive per input shape, 1-3 MB each, up to 1024 of
# them by default: a server's memory grew by 180 MB as it met the shapes of `buckets`' ladder. With
# 64 the memory stayed flat and the common shapes stayed cached (same CPU time per text, measured on
# fresh VADER micro-batches). The variable is read when the first primitive is built, so setting it
# before the models run is enough; a value the user set wins.
PRIMITIVE_CACHE_CAPACITY = 64


def serve(models: Mapping[str, Any], *, host: str = "127.0.0.1", port: int = 8080, runtime: str = "torch",
          device: str = "auto", settings: ServeSettings | None = None, access_log: bool = False,
          bf16_output: bool = False, api_key: str | None = None) -> None:
    """Serve `models` ({name: model directory or loaded model}) over HTTP until stopped (`bf16_output`,
    `api_key`: as in `create_app`; `guards.read_api_key` reads one as the command does).

    Returns once a SIGTERM or Ctrl-C has drained the requests in flight.
    """
    import uvicorn

    settings = settings or ServeSettings()
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(PRIMITIVE_CACHE_CAPACITY))
    listener = bind(host, port)
    try:
        # The response says which texts were truncated; the per-call warnings would only flood the log.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"nlp_lstm(\.|$)")
        app = create_app(models, settings=settings, runtime=runtime, device=device, bf16_output=bf16_output,
                         api_key=api_key)
        bound_host, bound_port = listener.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        warning = exposure_warning(host, bound_host, bound_port, api_key=api_key)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        print(f"serving {', '.join(app.state.registry.models)} on http://{shown}:{bound_port} "
              f"(API schema: http://{shown}:{bound_port}/openapi.json); Ctrl-C or SIGTERM drains and stops",
              file=sys.stderr, flush=True)
        config = uvicorn.Config(app, log_config=_log_config(), access_log=access_log, lifespan="on",
                                http=functools.partial(_timed_h11_protocol(), read_timeout=settings.read_timeout_s),
                                timeout_keep_alive=settings.timeout_keep_alive_s,
                                limit_concurrency=settings.limit_concurrency,
                                timeout_graceful_shutdown=settings.drain_timeout_s)
        with _absorb_reraised_signals():
            uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()


def exposure_warning(host: str, bound_host: str, port: int, *, api_key: str | None) -> str | None:
    """The warning line for a server that other machines can reach and that asks for no key, or None."""
    if api_key is not None or ipaddress.ip_address(bound_host.split("%")[0]).is_loopback:
        return None
    return (f"warning: serving on {host} without an API key: anyone who can reach port {port} can use the models; "
            "pass --api-key-file (or set NLP_LSTM_API_KEY) and put TLS in front (docs/serve.md)")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port`, or an `NlpLstmError` naming the option to change."""
    if not 0 <= port <= 65535:
        raise NlpLstmError(f"--port {port} is out of range; use 1-65535 (0 picks a free port)")
    try:
        family, kind, proto, _, _ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
    except socket.gaierror as error:
        raise NlpLstmError(f"--host {host!r} is not an address of this machine ({error.strerror}); "
                           "use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)") from None
    # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto is
    # IPPROTO_TCP, and accepted sockets inherit it. With proto 0 every response waited ~40 ms for
    # the client's delayed ACK (measured: 48 ms per /health request on loopback, 1 ms with it).
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: rebind past TIME_WAIT
    try:
        listener.bind((host, port))
        listener.listen(2048)  # connections wait in the backlog while the models load
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise NlpLstmError(f"port {port} on {host} is in use; choose another --port (0 picks a free one)") from None
        if error.errno == errno.EACCES:
            raise NlpLstmError(f"no permission to listen on port {port}; use a port above 1023") from None
        raise NlpLstmError(f"cannot listen on {host}:{port} ({error.strerror}); check --host and --port") from None
    return listener


def _timed_h11_protocol():
    """`TimedH11Protocol`, defined on first use: uvicorn and h11 are imported only when serving."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        """uvicorn's h11 protocol with a deadline for each request's headers (`read_timeout` s).

        The clock starts when the connection opens and again after each answer; it stops once the
        request's headers are complete (h11 leaves its IDLE state). A client that sends nothing, or
        one header byte at a time, is disconnected when it runs out.
        """

        def __init__(self, *args, read_timeout: float, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.read_timeout = read_timeout
            self.header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self.header_timer = self.loop.call_later(self.read_timeout, self._timed_out)

        def _disarm(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def _timed_out(self) -> None:
            self.header_timer = None
            if self.conn.their_state is h11.IDLE:  # no complete request head yet: nothing to answer
                self.transport.close()

    return TimedH11Protocol


@contextmanager
def _absorb_reraised_signals() -> Iterator[None]:
    """Let uvicorn re-raise SIGINT / SIGTERM into a no-op after its graceful shutdown (exit 0)."""
    if sys.platform == "win32":  # uvicorn re-raises only where signal.raise_signal acts as on POSIX
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda number, frame: None) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _log_config() -> dict:
    """uvicorn's logging, with our logger (batch failures, internal errors) on its handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = {**LOGGING_CONFIG, "loggers": dict(LOGGING_CONFIG["loggers"])}
    config["loggers"]["nlp_lstm.serve"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config

