from typing import Annotated, List

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
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0, help="How long a batch waits for more texts after its first.")] = 5.0,
    max_queue: Annotated[int, typer.Option("--max-queue", min=1, help="Texts waiting per model before requests get 503.")] = 1024,
    max_texts_per_request: Annotated[int, typer.Option("--max-texts-per-request", min=1, help="Most texts in one request (else 413).")] = 64,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", min=64, help="Largest request body in bytes (else 413).")] = 2 * 1024 * 1024,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request (uvicorn's access log).")] = False,
    bf16_output: Annotated[bool, typer.Option("--bf16-output", help="Summarizers: output layer in bfloat16, faster decoding on CPUs with bfloat16 units; summaries may differ slightly.")] = False,
) -> None:
    """Serve models over HTTP (classify, summarize; micro-batched) until Ctrl-C or SIGTERM."""
    def action():
        try:
            from nlp_lstm.serve import ServeSettings, parse_model_specs, serve
        except ImportError as error:
            raise NlpLstmError(f"`nlp-lstm serve` needs the serve extra ({error.name} is missing): "
                               "pip install 'nlp-lstm[serve]'") from None
        settings = ServeSettings(max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, max_queue=max_queue,
                                 max_texts_per_request=max_texts_per_request, max_body_bytes=max_body_bytes)
        serve(parse_model_specs(model), host=host, port=port, runtime=runtime, device=options.device, settings=settings,
              access_log=access_log, bf16_output=bf16_output)

    run_stage(action, debug=options.debug, quiet=options.quiet, threads=options.threads)
