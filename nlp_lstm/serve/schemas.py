"""Request and response bodies of the HTTP API (pydantic models; FastAPI describes them at /openapi.json)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

MAX_BEAM_SIZE = 16
MAX_SUMMARY_TOKENS = 512


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["What a lovely film."]}]})

    texts: list[str] = Field(description="Texts to classify.")
    model: Optional[str] = Field(None, description="A served model's name (GET /v1/models); default: the first classifier.")


class SummarizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"texts": ["The Danube is the second-longest river in Europe."], "beam_size": 4}]})

    texts: list[str] = Field(description="Texts to summarize.")
    model: Optional[str] = Field(None, description="A served model's name (GET /v1/models); default: the first summarizer.")
    beam_size: Optional[int] = Field(None, ge=1, le=MAX_BEAM_SIZE, description="Beam width (1: greedy); default: the model's.")
    max_length: Optional[int] = Field(None, ge=1, le=MAX_SUMMARY_TOKENS, description="Most output tokens; default: the model's.")


class TagRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["Anna flew to Paris."]}]})

    texts: list[str] = Field(description="Texts to tag.")
    model: Optional[str] = Field(None, description="A served model's name (GET /v1/models); default: the first tagger.")
    pretokenized: bool = Field(False, description="Each text is tokens separated by whitespace (else the model's "
                                                  "language's spaCy rules split it into words).")


class ClassifyResult(BaseModel):
    label: Optional[str] = Field(description="The most probable label.")
    score: float = Field(description="Its probability.")
    scores: dict[str, float] = Field(description="Every label's probability.")
    labels: Optional[list[str]] = Field(None, description="Multi-label models: every label at or above the threshold.")
    truncated: bool = Field(False, description="The text was longer than the model reads; its first tokens were used.")


class ClassifyResponse(BaseModel):
    model: str
    results: list[ClassifyResult]


class SummarizeResult(BaseModel):
    summary: str
    truncated: bool = Field(False, description="The text was longer than the model reads; its first tokens were used.")


class SummarizeResponse(BaseModel):
    model: str
    results: list[SummarizeResult]


class TagSpan(BaseModel):
    type: str = Field(description="The span's type (X of B-X).")
    start: int = Field(description="Its first token.")
    end: int = Field(description="One past its last token.")
    start_char: Optional[int] = Field(None, description="Raw text: its first character's offset in the text.")
    end_char: Optional[int] = Field(None, description="Raw text: one past its last character.")
    text: str
    confidence: Optional[float] = Field(None, description="The probability of exactly this span (CRF: its tags' "
                                                          "exact probability, with no I-X after them).")


class TagResult(BaseModel):
    tokens: list[str]
    tags: list[str]
    confidences: Optional[list[float]] = Field(None, description="Per token, the marginal probability of its tag.")
    spans: list[TagSpan]
    offsets: Optional[list[list[int]]] = Field(None, description="Raw text: each token's [start, end) characters.")
    truncated: bool = Field(False, description="The text was longer than the model reads; its first tokens were tagged.")


class TagResponse(BaseModel):
    model: str
    results: list[TagResult]


class QueueInfo(BaseModel):
    queued: int = Field(description="Texts waiting for the model now.")
    max_queue: int
    max_batch_size: int
    max_wait_ms: float
    requests: int = Field(description="Requests accepted since start.")
    rejected: int = Field(description="Requests refused with 503 (queue full) since start.")
    batches: int = Field(description="Model calls since start.")
    texts: int = Field(description="Texts run since start.")
    largest_batch: int
    running_batch_s: float = Field(0.0, description="Seconds the batch now running has run (0: idle); /ready "
                                                    "answers 503 past --stuck-batch-s.")


class ModelInfo(BaseModel):
    name: str
    kind: str
    runtime: str
    default: bool = Field(description="Used when a request names no model.")
    labels: Optional[list[str]] = None
    max_input_tokens: Optional[int] = Field(None, description="Tokens of a text the model reads; the rest is truncated.")
    metrics: Optional[dict[str, Any]] = Field(None, description="metrics.json of the model directory, read at load.")
    config: Optional[dict[str, Any]] = Field(None, description="config.json of the model directory, read at load "
                                                                "(filesystem paths hidden).")
    queue: Optional[QueueInfo] = None


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class ErrorResponse(BaseModel):
    error: str = Field(description="What was wrong, and how to fix it.")


class StatusResponse(BaseModel):
    status: str
    models: Optional[list[str]] = None
