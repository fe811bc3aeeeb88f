"""The HTTP API over served models (FastAPI): one POST route per servable kind (`endpoints.ENDPOINTS`),
models, health, ready.

    POST /v1/classify   {"texts": [...], "model"?}                              -> {"model", "results"}
    POST /v1/summarize  {"texts": [...], "model"?, "beam_size"?, "max_length"?} -> {"model", "results"}
    GET  /v1/models     every model's name, kind, labels, metrics.json, config.json, queue counters
    GET  /health        the process answers (liveness);  GET /ready: models loaded, batchers running, none stuck
    GET  /openapi.json  the API's schema (no /docs or /redoc: their pages load scripts from a CDN)

Every error is `{"error": "..."}` naming the problem: 400 malformed JSON or the wrong kind of model,
401 a missing or wrong API key, 404 an unknown model or path, 408 a body that never arrives, 413 a
body or a text list over its limit, 422 a body of the wrong shape or a text that is not valid
Unicode, 503 a full queue (with `Retry-After`) or a server shutting down, 500 an internal error (its
traceback goes to the server log only). Texts are run by one `MicroBatcher` per model, started and
stopped (drained) with the app's lifespan; one request's texts never fail another's (`batching`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.kinds import KINDS
from nlp_lstm.serve import schemas
from nlp_lstm.serve.batching import BatcherClosed, QueueFull
from nlp_lstm.serve.endpoints import ENDPOINTS, Endpoint
from nlp_lstm.serve.explain_page import add_page
from nlp_lstm.serve.guards import ApiKey, BodyLimit, ShutdownGuard
from nlp_lstm.serve.runners import ServedModel, load_models

logger = logging.getLogger("nlp_lstm.serve")


@dataclass(frozen=True)
class ServeSettings:
    """Batching and limits; the `nlp-lstm serve` options of the same names."""

    max_batch_size: int = 64  # texts per model call
    max_wait_ms: float = 5.0  # under load, how long a batch waits for more texts; after a quiet spell: none
    max_queue: int = 1024  # texts waiting per model before requests get 503
    max_texts_per_request: int = 64
    max_body_bytes: int = 2 * 1024 * 1024  # a 1 MB text fits; the model reads only its first tokens
    retry_after_s: int = 1  # the Retry-After of a 503
    stuck_batch_s: float = 30.0  # /ready answers 503 while one batch of a model has run longer
    read_timeout_s: float = 15.0  # a request's headers, and then its body, must arrive within this
    timeout_keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this
    limit_concurrency: int = 1024  # connections and requests at once; uvicorn answers 503 beyond
    drain_timeout_s: float = 30.0  # after SIGTERM, the longest wait for requests in flight

    def __post_init__(self) -> None:
        for option, value, least in (("--max-batch-size", self.max_batch_size, 1), ("--max-queue", self.max_queue, 1),
                                     ("--max-texts-per-request", self.max_texts_per_request, 1),
                                     ("--max-body-bytes", self.max_body_bytes, 64), ("--max-wait-ms", self.max_wait_ms, 0),
                                     ("--stuck-batch-s", self.stuck_batch_s, 0.1), ("--read-timeout-s", self.read_timeout_s, 0.1),
                                     ("--timeout-keep-alive", self.timeout_keep_alive_s, 0.1),
                                     ("--limit-concurrency", self.limit_concurrency, 1),
                                     ("--drain-timeout-s", self.drain_timeout_s, 0)):
            if value < least:
                raise NlpLstmError(f"{option} {value} is too small; use {least} or more")
        if self.max_queue < self.max_texts_per_request:
            raise NlpLstmError(f"--max-queue {self.max_queue} is below --max-texts-per-request "
                               f"{self.max_texts_per_request}, so a full request could never be queued; raise --max-queue")


class Registry:
    """The served models by name, and which one answers a request that names none."""

    def __init__(self, models: dict[str, ServedModel], settings: ServeSettings) -> None:
        self.models = models
        self.settings = settings
        self.ready = False
        self.defaults = {}
        for model in models.values():  # the first model of each kind, in the order given
            self.defaults.setdefault(model.kind, model.name)

    def pick(self, name: str | None, *, kind: str) -> ServedModel:
        endpoint = ENDPOINTS[kind].path
        if name is None:
            if kind not in self.defaults:
                other = " or ".join(ENDPOINTS[served].path for served in self.defaults)
                raise HTTPException(400, f"no {kind} is served (models: {', '.join(self.models)}); use {other}")
            return self.models[self.defaults[kind]]
        if name not in self.models:
            raise HTTPException(404, f"unknown model {name!r}; served: {', '.join(self.models)} (GET /v1/models)")
        model = self.models[name]
        if model.kind != kind:
            right = ENDPOINTS[model.kind].path
            raise HTTPException(400, f"model {name!r} is a {model.kind}, not a {kind}: {endpoint} cannot run it; use {right}")
        return model

    def check_texts(self, texts: list[str]) -> None:
        """413 for too many texts; 422 naming `texts[i]` for a text that is not valid Unicode.

        JSON lets a client send a lone surrogate (`"x\\ud800y"`), which is no character and which
        the tokenizers raise on; checked here, it fails its own request only, before any batch.
        """
        limit = self.settings.max_texts_per_request
        if len(texts) > limit:
            raise HTTPException(413, f"{len(texts)} texts in one request; the limit is {limit}: split them into several requests")
        for index, text in enumerate(texts):
            if text.isascii():
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:  # only a surrogate cannot be encoded
                raise HTTPException(422, f"texts[{index}] holds a lone surrogate (U+{ord(text[error.start]):04X}) at "
                                         f"character {error.start}, which is not a character; send valid UTF-8 "
                                         "(a \\uD800-\\uDFFF escape only as half of a pair)") from None

    async def run(self, model: ServedModel, items: list) -> list[dict[str, Any]]:
        """The items' results from the model's batcher, awaited without blocking the event loop."""
        try:
            future = model.batcher.submit(items)
        except QueueFull:
            raise HTTPException(503, f"model {model.name!r} is busy ({model.batcher.queued} texts queued); retry shortly",
                                headers={"Retry-After": str(self.settings.retry_after_s)}) from None
        except BatcherClosed:
            raise HTTPException(503, "the server is shutting down; retry on another instance",
                                headers={"Retry-After": str(self.settings.retry_after_s)}) from None
        try:
            return await asyncio.wrap_future(future)
        except Exception as error:  # this request's own items failed (`batching`): log it once
            logger.error("model %r failed on a request of %d text(s)", model.name, len(items), exc_info=error)
            raise HTTPException(500, f"internal error in model {model.name!r} ({type(error).__name__}); "
                                     "the traceback is in the server log") from None

    def start(self) -> None:
        settings = self.settings
        for model in self.models.values():
            model.start(max_batch_size=settings.max_batch_size, max_wait=settings.max_wait_ms / 1000,
                        max_queue=settings.max_queue)
        self.ready = True

    def close(self) -> None:
        self.ready = False
        for model in self.models.values():
            model.close()

    def not_ready(self) -> str | None:
        """Why `/ready` answers 503 (starting, draining, or a model's batch running too long), or None."""
        if not self.ready or not all(m.batcher is not None and m.batcher.running for m in self.models.values()):
            return "not ready: the models are starting or the server is shutting down"
        limit = self.settings.stuck_batch_s
        running = {m.name: m.batcher.busy_for for m in self.models.values()}  # read once: batches end meanwhile
        stuck = {name: seconds for name, seconds in running.items() if seconds > limit}
        if stuck:
            names = ", ".join(f"{name!r} for {seconds:.0f} s" for name, seconds in stuck.items())
            return (f"not ready: one batch has run longer than {limit:g} s (--stuck-batch-s) in model {names}; "
                    "its requests wait")
        return None

    def describe(self, model: ServedModel) -> schemas.ModelInfo:
        batcher, settings = model.batcher, self.settings
        queue = None if batcher is None else schemas.QueueInfo(
            queued=batcher.queued, max_queue=batcher.max_queue, max_batch_size=batcher.max_batch_size,
            max_wait_ms=settings.max_wait_ms, requests=batcher.stats.requests, rejected=batcher.stats.rejected,
            batches=batcher.stats.batches, texts=batcher.stats.items, largest_batch=batcher.stats.largest_batch,
            running_batch_s=round(batcher.busy_for, 3),
        )
        return schemas.ModelInfo(
            name=model.name, kind=model.kind, runtime=model.runtime, default=self.defaults.get(model.kind) == model.name,
            labels=list(model.model.labels) if KINDS[model.kind].labels else None,
            max_input_tokens=model.max_input_tokens, metrics=model.metrics, config=model.config, queue=queue,
        )


def create_app(models: Mapping[str, Any], *, settings: ServeSettings | None = None, runtime: str = "torch",
               device: str = "auto", bf16_output: bool = False, api_key: str | None = None) -> FastAPI:
    """The ASGI app serving `models`: {name: a loaded model (`nlp_lstm.load`) or its directory}.

    Directories are loaded now (a bad one raises `NlpLstmError`); batcher threads start with the
    app's lifespan (uvicorn, or `fastapi.testclient.TestClient` as a context manager) and are
    drained and stopped when it ends. `bf16_output`: summarizers decode with their output layer in
    bfloat16 (`nlp_lstm.inference.bfloat16`). `api_key`: every request but `/health` and `/ready`
    must carry `Authorization: Bearer <api_key>` (`guards.ApiKey`).
    """
    registry = Registry(load_models(models, kinds=tuple(ENDPOINTS), runtime=runtime, device=device,
                                    bf16_output=bf16_output), settings or ServeSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        registry.start()
        try:
            yield
        finally:
            await asyncio.to_thread(registry.close)  # runs what is still queued, then joins the threads

    # No /docs or /redoc: FastAPI's pages load their scripts and styles from a CDN (blank on an
    # offline host), and no installed package ships them; /openapi.json holds the same schema.
    app = FastAPI(title="nlp-lstm", summary="LSTM text classification and summarization, micro-batched.",
                  version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.registry = registry
    settings = registry.settings
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, read_timeout=settings.read_timeout_s)
    if api_key is not None:
        app.add_middleware(ApiKey, key=api_key)
    app.add_middleware(ShutdownGuard, retry_after_s=settings.retry_after_s)  # the last added runs first
    _add_error_handlers(app)
    errors = {code: {"model": schemas.ErrorResponse} for code in (400, 401, 404, 408, 413, 422, 500, 503)}

    for kind, endpoint in ENDPOINTS.items():
        _add_endpoint(app, registry, kind=kind, endpoint=endpoint, responses=errors)

    add_page(app, registry)  # GET / (the page) and POST /v1/explain

    @app.get("/v1/models", response_model=schemas.ModelsResponse)
    async def list_models() -> Any:
        """Every served model: name, kind, labels, metrics, config and queue counters."""
        return {"models": [registry.describe(model) for model in registry.models.values()]}

    @app.get("/health", response_model=schemas.StatusResponse, response_model_exclude_none=True)
    async def health() -> Any:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", response_model=schemas.StatusResponse, responses={503: {"model": schemas.ErrorResponse}})
    async def ready() -> Any:
        """Readiness: every model is loaded, its batcher runs, and no batch has run past --stuck-batch-s
        (503 naming the model otherwise, and while starting or draining)."""
        problem = registry.not_ready()
        if problem is not None:
            return JSONResponse({"error": problem}, 503)
        return {"status": "ready", "models": list(registry.models)}

    return app


def _add_endpoint(app: FastAPI, registry: Registry, *, kind: str, endpoint: Endpoint, responses: dict) -> None:
    """`POST endpoint.path`: a served model of `kind` runs the request's items through its batcher."""

    async def run(body) -> Any:
        model = registry.pick(body.model, kind=kind)
        registry.check_texts(body.texts)
        return {"model": model.name, "results": await registry.run(model, endpoint.items(body, model))}

    # FastAPI reads the body's type from the signature; the route's name and text go into /openapi.json.
    run.__signature__ = inspect.Signature([inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                             annotation=endpoint.request)])
    run.__name__ = endpoint.path.rsplit("/", 1)[-1]
    run.__doc__ = endpoint.summary
    app.add_api_route(endpoint.path, run, methods=["POST"], response_model=endpoint.response,
                      response_model_exclude_none=endpoint.exclude_none, responses=responses)


def _version() -> str:
    import nlp_lstm

    return nlp_lstm.__version__


# --------------------------------------------------------------------------------------------
# Errors: every one is {"error": "..."}
# --------------------------------------------------------------------------------------------


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        detail = error.detail
        if error.status_code == 404 and detail == "Not Found":
            detail = f"no such path {request.url.path}; see /openapi.json for the API"
        elif error.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; see /openapi.json for the API"
        return JSONResponse({"error": str(detail)}, error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        # An unknown field first: {"txts": [...]} is a typo of "texts" more than a missing "texts".
        problems = sorted(error.errors(), key=lambda problem: problem.get("type") != "extra_forbidden")
        status = 400 if problems and problems[0].get("type") == "json_invalid" else 422
        message = describe_problem(problems[0]) if problems else "invalid request"
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
        return JSONResponse({"error": message}, status)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        logger.error("internal error on %s %s", request.method, request.url.path, exc_info=error)
        return JSONResponse({"error": f"internal error ({type(error).__name__}); the traceback is in the server log"}, 500)


def describe_problem(problem: dict) -> str:
    """One pydantic validation problem -> one line naming the field and the fix."""
    kind, location = problem.get("type", ""), [part for part in problem.get("loc", ()) if part != "body"]
    path = "".join(f"[{part}]" if isinstance(part, int) else (f".{part}" if i else str(part))
                   for i, part in enumerate(location))
    example = 'send a JSON object like {"texts": ["some text"]} with Content-Type: application/json'
    if kind == "json_invalid":
        return f"malformed JSON in the request body ({problem.get('ctx', {}).get('error', 'decode error')}); {example}"
    if not location:
        if kind == "missing":
            return f"the request body is empty; {example}"
        return f"the request body is not a JSON object; {example}"
    if kind == "missing":
        return f"missing field {path!r}; {example}"
    if kind == "extra_forbidden":
        return f"unknown field {path!r}; {example} (see /openapi.json for the optional fields)"
    if kind == "string_type":
        return f"{path} must be a string, not {_json_type(problem.get('input'))}"
    if kind == "list_type":
        return f"{path} must be a list of strings, not {_json_type(problem.get('input'))}"
    return f"{path}: {problem.get('msg', 'invalid value')}"


def _json_type(value: Any) -> str:
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)
