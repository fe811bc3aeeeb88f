from pathlib import Path
from typing import Annotated, List, Optional

import typer

from nlp_lstm.cli.common import run_stage
from nlp_lstm.cli.options import RUNTIME, Options, with_options
from nlp_lstm.errors import NlpLstmError


@with_options(RUNTIME)
def serve_command(
    options: Options,
    model: Annotated[List[str], typer.Option("--model", "-m", help="Model directory, or NAME=DIR; repeat to serve several.")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port to listen on (0: a free one, printed).")] = 8080,
    runtime: Annotated[str, typer.Option("--runtime", help="torch | onnx (a model exported by `nlp-lstm export`).")] = "torch",
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", min=1, help="Most texts per model call.")] = 64,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0, help="Under load, how long a batch waits for more texts after its first (a request after a quiet spell runs at once).")] = 5.0,
    max_queue: Annotated[int, typer.Option("--max-queue", min=1, help="Texts waiting per model before requests get 503.")] = 1024,
    max_texts_per_request: Annotated[int, typer.Option("--max-texts-per-request", min=1, help="Most texts in one request (else 413).")] = 64,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", min=64, help="Largest request body in bytes (else 413).")] = 2 * 1024 * 1024,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request (uvicorn's access log).")] = False,
    bf16_output: Annotated[bool, typer.Option("--bf16-output", help="Summarizers: output layer in bfloat16, faster decoding on CPUs with bfloat16 units; summaries may differ slightly.")] = False,
    api_key_file: Annotated[Optional[Path], typer.Option("--api-key-file", help="Require 'Authorization: Bearer <key>' with the key in this file (else from NLP_LSTM_API_KEY); /health and /ready stay open.")] = None,
    stuck_batch_s: Annotated[float, typer.Option("--stuck-batch-s", min=0.1, help="/ready answers 503 while one batch of a model has run longer than this.")] = 30.0,
    read_timeout_s: Annotated[float, typer.Option("--read-timeout-s", min=0.1, help="Seconds a request's headers, then its body, may take to arrive (else closed / 408).")] = 15.0,
    timeout_keep_alive: Annotated[float, typer.Option("--timeout-keep-alive", min=0.1, help="Seconds an idle keep-alive connection stays open.")] = 5.0,
    limit_concurrency: Annotated[int, typer.Option("--limit-concurrency", min=1, help="Most connections and requests at once; beyond it uvicorn answers 503.")] = 1024,
    drain_timeout_s: Annotated[float, typer.Option("--drain-timeout-s", min=0, help="After SIGTERM, the longest wait for requests in flight; the rest get 503.")] = 30.0,
) -> None:
    """Serve models over HTTP (classify, summarize; micro-batched) until Ctrl-C or SIGTERM."""
    def action():
        try:
            from nlp_lstm.serve import ServeSettings, parse_model_specs, read_api_key, serve
        except ImportError as error:
            raise NlpLstmError(f"`nlp-lstm serve` needs the serve extra ({error.name} is missing): "
                               "pip install 'nlp-lstm[serve]'") from None
        settings = ServeSettings(max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, max_queue=max_queue,
                                 max_texts_per_request=max_texts_per_request, max_body_bytes=max_body_bytes,
                                 stuck_batch_s=stuck_batch_s, read_timeout_s=read_timeout_s,
                                 timeout_keep_alive_s=timeout_keep_alive, limit_concurrency=limit_concurrency,
                                 drain_timeout_s=drain_timeout_s)
        serve(parse_model_specs(model), host=host, port=port, runtime=runtime, device=options.device, settings=settings,
              access_log=access_log, bf16_output=bf16_output, api_key=read_api_key(api_key_file))

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)
