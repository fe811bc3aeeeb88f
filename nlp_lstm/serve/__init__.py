"""HTTP serving of saved models: `create_app(models)` (the ASGI app) and `serve(models, ...)` (run it).

    from nlp_lstm.serve import create_app, serve
    app = create_app({"sentiment": "runs/sentiment/model"})      # any ASGI server can run it
    serve({"sentiment": "runs/sentiment/model"}, port=8080)      # or: nlp-lstm serve --model DIR

Modules, in the order a request meets them: `guards` (API key, body size and read time, shutdown)
-> `app` (routes, limits, errors) -> `batching` (the micro-batcher) -> `runners` (what one batch runs
per model kind); `server` binds the port and runs uvicorn; `schemas` holds the request and response
bodies. Needs the `serve` extra (fastapi, uvicorn).
"""

from nlp_lstm.serve.app import ServeSettings, create_app
from nlp_lstm.serve.batching import BatcherClosed, MicroBatcher, QueueFull
from nlp_lstm.serve.guards import read_api_key
from nlp_lstm.serve.runners import parse_model_specs
from nlp_lstm.serve.server import serve

__all__ = ["BatcherClosed", "MicroBatcher", "QueueFull", "ServeSettings", "create_app", "parse_model_specs", "read_api_key",
           "serve"]
