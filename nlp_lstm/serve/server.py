"""`serve`: listen on a port and run the app with uvicorn until SIGTERM or Ctrl-C, then drain.

Order of start-up, so every mistake a user can make fails fast with one line: check the settings,
bind the port (taken or forbidden -> `NlpLstmError`), load the models, then print the address
(`--port 0` picks a free port, printed here) and hand the listening socket to uvicorn.

Shutdown: on SIGTERM or SIGINT uvicorn stops accepting connections, waits for the requests in
flight (at most `DRAIN_TIMEOUT_S`), then ends the app's lifespan, which drains and joins the batcher
threads. uvicorn (>= 0.29) then re-raises the signal it caught so that the default action runs; the
handlers installed around it here make that a no-op, so a drained server exits 0.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.serve.app import ServeSettings, create_app

DRAIN_TIMEOUT_S = 30  # longest wait for in-flight requests after SIGTERM
# oneDNN (torch's CPU LSTM) keeps one compiled primitive per input shape, 1-3 MB each, up to 1024 of
# them by default: a server's memory grew by 180 MB as it met the shapes of `buckets`' ladder. With
# 64 the memory stayed flat and the common shapes stayed cached (same CPU time per text, measured on
# fresh VADER micro-batches). The variable is read when the first primitive is built, so setting it
# before the models run is enough; a value the user set wins.
PRIMITIVE_CACHE_CAPACITY = 64


def serve(models: Mapping[str, Any], *, host: str = "127.0.0.1", port: int = 8080, runtime: str = "torch",
          device: str = "auto", settings: ServeSettings | None = None, access_log: bool = False,
          bf16_output: bool = False) -> None:
    """Serve `models` ({name: model directory or loaded model}) over HTTP until stopped (`bf16_output`:
    as in `create_app`).

    Returns once a SIGTERM or Ctrl-C has drained the requests in flight.
    """
    import uvicorn

    settings = settings or ServeSettings()
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(PRIMITIVE_CACHE_CAPACITY))
    listener = bind(host, port)
    try:
        # The response says which texts were truncated; the per-call warnings would only flood the log.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"nlp_lstm(\.|$)")
        app = create_app(models, settings=settings, runtime=runtime, device=device, bf16_output=bf16_output)
        bound_host, bound_port = listener.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        print(f"serving {', '.join(app.state.registry.models)} on http://{shown}:{bound_port} "
              f"(API docs: http://{shown}:{bound_port}/docs); Ctrl-C or SIGTERM drains and stops", file=sys.stderr, flush=True)
        config = uvicorn.Config(app, log_config=_log_config(), access_log=access_log,
                                timeout_graceful_shutdown=DRAIN_TIMEOUT_S, lifespan="on")
        with _absorb_reraised_signals():
            uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()


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

