"""`nlp-lstm`: one subcommand per stage; each file in this package parses options and calls the library."""

from nlp_lstm import threads

threads.configure_before_torch()  # OpenMP must sleep, not spin, at barriers: set before torch loads libgomp

import typer  # noqa: E402

from nlp_lstm.cli import classify, encode, evaluate, explain, export, pretrain, run, serve, summarize, tag, train, train_tagger, tune, vocab  # noqa: E402

app = typer.Typer(
    name="nlp-lstm",
    help="Train and run LSTM models for text classification and abstractive summarization.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("vocab")(vocab.vocab_command)
app.command("encode")(encode.encode_command)
app.command("pretrain")(pretrain.pretrain_command)
train.app.command("tagger")(train_tagger.train_tagger_command)
app.add_typer(train.app, name="train")
app.command("evaluate")(evaluate.evaluate_command)
app.command("classify")(classify.classify_command)
app.command("summarize")(summarize.summarize_command)
app.command("tag")(tag.tag_command)
app.command("explain")(explain.explain_command)
app.command("run")(run.run_command)
app.command("export")(export.export_command)
app.command("serve")(serve.serve_command)
app.command("tune")(tune.tune_command)

if __name__ == "__main__":
    app()
