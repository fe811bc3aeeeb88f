"""The HTTP endpoint of each servable model kind: path, bodies, and the items a request becomes.

`app.create_app` adds one POST route per entry of `ENDPOINTS`; the route picks a served model of its
kind (`Registry.pick`), turns the request into items (`Endpoint.items`) and awaits the model's
batcher, which runs the predictor's own `predict_batch` on them. A kind without an entry (a language
model) is not served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel

from nlp_lstm.serve import schemas


@dataclass(frozen=True)
class Endpoint:
    """One kind's route: `POST path` with a `request` body, answered by a `response` body.

    Attributes:
        items: (request body, the `ServedModel` picked) -> the items its batcher runs, one per text.
        summary: the route's description (`/openapi.json`).
        exclude_none: leave unset optional fields out of the response (`labels` of a single-label model).
    """

    path: str
    request: type[BaseModel]
    response: type[BaseModel]
    items: Callable[[Any, Any], list]
    summary: str
    exclude_none: bool = False


def summarize_items(body: schemas.SummarizeRequest, model) -> list[tuple[str, dict[str, int]]]:
    """Each text with its decoding settings: the request's, else the model's own (config.json
    `decoding`), else `summarize`'s defaults. Texts with equal settings are decoded together."""
    saved = (model.config or {}).get("decoding") or {}
    overrides = {"beam_size": body.beam_size or int(saved.get("beam_size", 4)),
                 "max_length": body.max_length or int(saved.get("max_length", 30))}
    return [(text, overrides) for text in body.texts]


ENDPOINTS: dict[str, Endpoint] = {
    "classifier": Endpoint("/v1/classify", schemas.ClassifyRequest, schemas.ClassifyResponse, exclude_none=True,
                           items=lambda body, model: body.texts,
                           summary="The top label, its probability, and every label's probability, per text."),
    "summarizer": Endpoint("/v1/summarize", schemas.SummarizeRequest, schemas.SummarizeResponse,
                           items=summarize_items, summary="A summary per text (beam search; `beam_size` 1 is greedy)."),
    "tagger": Endpoint("/v1/tag", schemas.TagRequest, schemas.TagResponse, exclude_none=True,
                       items=lambda body, model: [(text, body.pretokenized) for text in body.texts],
                       summary="Per text: tokens, tags, each tag's probability, and spans with character offsets."),
}
