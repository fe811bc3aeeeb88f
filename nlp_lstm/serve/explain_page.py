"""The page at `/` and the endpoint it calls, `POST /v1/explain` (`inference/explain.py`).

    GET  /                   the page (plain HTML, CSS and JS from `serve/page/`; nothing from a CDN)
    GET  /page/{file}        its style sheet and script
    POST /v1/explain         {"texts": [...], "model"?, "label"?, "steps"?} -> {"model", "kind", "results"}

The page and its two files hold no data, so they are served without the API key (`guards.OPEN_PATHS`);
the page asks for the key and sends it with its own calls to `/v1/models` and `/v1/explain`.
Explanations run one at a time in a worker thread (a classifier's integrated gradients cost one
forward and backward pass per step), beside the batchers, which keep serving `classify` and
`summarize`. Long texts are cut first as the batch functions cut them (`inference/clip.clip_text`).
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any, Optional

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from nlp_lstm.errors import NlpLstmError
from nlp_lstm.inference.clip import clip_text

PAGE_FILES = {"page.css": "text/css; charset=utf-8", "page.js": "text/javascript; charset=utf-8"}
PAGE_PATHS = frozenset({"/", *(f"/page/{name}" for name in PAGE_FILES)})
MAX_EXPLAIN_TEXTS = 8
MAX_STEPS = 4096  # inference/explain.py MAX_STEPS


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"texts": ["Not bad at all, I would buy it again."], "model": "sentiment"}]})

    texts: list[str] = Field(min_length=1, max_length=MAX_EXPLAIN_TEXTS, description="Texts to explain.")
    model: Optional[str] = Field(None, description="A served model's name (GET /v1/models); default: the first served.")
    label: Optional[str] = Field(None, description="Classifiers: the label to explain; default: the predicted one.")
    steps: Optional[int] = Field(None, ge=1, le=MAX_STEPS, description="Classifiers: the most gradient evaluations of integrated gradients.")


def page_file(name: str) -> str:
    return resources.files("nlp_lstm.serve").joinpath("page", name).read_text(encoding="utf-8")


def add_page(app: FastAPI, registry) -> None:
    """Add the page and `/v1/explain` to the app of `create_app` (its error handlers answer for them)."""
    one_at_a_time = asyncio.Lock()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> Any:
        return HTMLResponse(page_file("index.html"))

    @app.get("/page/{name}", include_in_schema=False)
    async def static(name: str) -> Any:
        if name not in PAGE_FILES:
            raise HTTPException(404, f"no such file /page/{name}; the page has {', '.join(sorted(PAGE_FILES))}")
        return Response(page_file(name), media_type=PAGE_FILES[name])

    @app.post("/v1/explain")
    async def explain(body: ExplainRequest) -> Any:
        """Why a model answers as it does: a classifier's probabilities and signed word attributions,
        a summarizer's attention, p_gen and copy source per output word (`nlp-lstm explain --format json`)."""
        served = pick(registry, body.model)
        registry.check_texts(body.texts)
        predictor = served.model
        if not hasattr(predictor, "explain") or not hasattr(getattr(predictor, "model", None), "parameters"):
            raise HTTPException(400, f"model {served.name!r} runs on the {served.runtime} runtime, which explain cannot "
                                     "take apart; serve it with --runtime torch")
        if served.kind == "summarizer" and (body.label is not None or body.steps is not None):
            raise HTTPException(422, "label and steps are for classifiers; a summarizer takes neither: drop them")
        options = {} if served.kind == "summarizer" else {"label": body.label, **({"steps": body.steps} if body.steps else {})}
        limit = predictor.max_input_length
        texts = [clip_text(text, predictor.tokenizer, limit)[0] for text in body.texts]
        async with one_at_a_time:
            try:
                results = await asyncio.to_thread(predictor.explain, texts, **options)
            except NlpLstmError as error:
                raise HTTPException(422, str(error)) from None
        return {"model": served.name, "kind": served.kind, "results": [without_text(r, t) for r, t in zip(results, body.texts)]}


def pick(registry, name: str | None):
    """The named served model (404 naming the served ones), or the first served."""
    if name is None:
        return next(iter(registry.models.values()))
    if name not in registry.models:
        raise HTTPException(404, f"unknown model {name!r}; served: {', '.join(registry.models)} (GET /v1/models)")
    return registry.models[name]


def without_text(result: dict[str, Any], text: str) -> dict[str, Any]:
    """The result with the text the client sent (not the cut one); `truncated` if either cut it."""
    return {**result, "text": text, "truncated": result["truncated"] or len(result["text"]) < len(text)}
