"""The summarizer's stage functions: `train_summarizer`, `summarize`, `evaluate_summarizer`, and `load`.

The flow mirrors the classifier's (`nlp_lstm.api.train`): fit or reuse a tokenizer, encode the splits
(`encode_summarization`), train with the shared loop (`fit`, through `SummarizationTask`), then save a
model directory (config.json + model.safetensors + tokenizer/) that `nlp_lstm.load` rebuilds as a
`SummarizerModel`. Scores are ROUGE-1/2/L F1 x 100 (`rouge-score`, stemmed), always reported beside the
lead-k baseline (the first k source words, k = the mean reference length in words).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import datasets
import torch

from nlp_lstm.api import _texts, keep_run_files, resume_or_fit_tokenizer, start_run_dir
from nlp_lstm.artifacts import atomic_write_json, staged_directory
from nlp_lstm.config import TrainConfig, from_dict
from nlp_lstm.data.collate import collate_summarization
from nlp_lstm.data.sampler import LengthBucketSampler
from nlp_lstm.data.sources import DataSource, load_split, load_splits
from nlp_lstm.data.encode import encode_summarization, extend_with_oovs
from nlp_lstm.data.tokenize import Tokenizer
from nlp_lstm.decoding.beam_search import DecodeConfig, beam_search, decoding_mode
from nlp_lstm.decoding.greedy import greedy_decode, greedy_decode_config
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.metrics.rouge import RougeCounts, lead_baseline, rouge_scores
from nlp_lstm.model_dir import load_model_tokenizer, load_state, read_model_config, save_model
from nlp_lstm.models.summarizer import Summarizer, SummarizerConfig
from nlp_lstm.plots import plot_attention, plot_training_curves
from nlp_lstm.predict import pick_device
from nlp_lstm.training.loop import fit, seed_everything, to_device

DEFAULT_TOKENIZER = {"kind": "sentencepiece", "vocab_size": 8000}
VALIDATION_DECODE_LIMIT = 500  # examples greedily decoded per validation pass (keeps epochs fast)


# --------------------------------------------------------------------------------------------
# Ids -> text
# --------------------------------------------------------------------------------------------


def ids_to_text(ids: Sequence[int], oovs: Sequence[str], tokenizer: Tokenizer) -> str:
    """Extended output ids -> text: ids < vocab_size are tokenizer pieces, the rest copied source OOVs."""
    return tokenizer.detokenize(ids_to_tokens(ids, oovs, tokenizer))


def ids_to_tokens(ids: Sequence[int], oovs: Sequence[str], tokenizer: Tokenizer) -> list[str]:
    vocab_size = tokenizer.vocab_size
    return [tokenizer.id_to_token(i) if i < vocab_size else oovs[i - vocab_size] for i in ids]


# --------------------------------------------------------------------------------------------
# The task the shared training loop trains
# --------------------------------------------------------------------------------------------


class SummarizationTask:
    """Teacher-forced NLL (+ coverage loss late in training); validated by ROUGE-L of greedy outputs.

    ROUGE-L is computed on the first `decode_limit` validation examples in the sampler's order (the
    loss on all of them), against the references as the encoder saw them (truncated to the target
    limit; target words outside the vocabulary and the source read as `<unk>`).
    """

    metric_name = "rougeL"

    def __init__(self, tokenizer: Tokenizer, *, training: TrainConfig, max_length: int,
                 decode_limit: int = VALIDATION_DECODE_LIMIT) -> None:
        self.tokenizer = tokenizer
        self.training = training
        self.max_length = max_length
        self.decode_limit = decode_limit
        self.collate = collate_summarization

    def loss(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        return model(batch)["loss"]

    def on_epoch_start(self, model: torch.nn.Module, epoch: int) -> None:
        # See et al. (2017) sec. 4: coverage is trained only for the last part of training.
        start = self.training.coverage_from_epoch
        inner = getattr(model, "module", model)  # the Summarizer inside a DDP wrapper reads the weight
        inner.coverage_weight = self.training.coverage_weight if start and epoch >= start else 0.0

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, batches: Callable[[], Any], *, all_reduce: bool = False
                 ) -> dict[str, Any]:
        """Mean NLL per target token over `batches()`, ROUGE of greedy outputs on the first `decode_limit`.

        `all_reduce=True` (DDP: each rank passes its own part of the split): counts and loss sums are
        summed over ranks first, so every rank returns the same metrics.
        """
        model = getattr(model, "module", model)
        model.eval()
        loss_sum, tokens, decoded = 0.0, 0, 0
        counts = RougeCounts()
        for batch in batches():
            out = model(batch)
            loss_sum += out["nll"].item() * out["num_tokens"]
            tokens += out["num_tokens"]
            if decoded < self.decode_limit:
                outputs = greedy_decode(model, batch, max_length=self.max_length)
                references = [
                    ids_to_text(row[: length - 1], oovs, self.tokenizer)  # drop the EOS
                    for row, length, oovs in zip(
                        batch["target_ids"].tolist(), batch["tgt_lengths"].tolist(), batch["oovs"]
                    )
                ]
                predictions = [ids_to_text(ids, oovs, self.tokenizer) for ids, oovs in zip(outputs, batch["oovs"])]
                counts.update(predictions, references)
                decoded += len(outputs)
        model.train()
        if all_reduce:
            from nlp_lstm.training import distributed

            counts = distributed.all_reduce_counts(counts)
            sums = distributed.all_reduce_sum(torch.tensor([loss_sum, tokens], dtype=torch.float64))
            loss_sum, tokens = sums.tolist()
        metrics = counts.compute()
        metrics["loss"] = loss_sum / max(1, tokens)
        return metrics


# --------------------------------------------------------------------------------------------
# A loaded model
# --------------------------------------------------------------------------------------------


class SummarizerModel:
    """A trained `Summarizer` with its tokenizer and length limits; what `nlp_lstm.load` returns."""

    kind = "summarizer"

    def __init__(self, model: Summarizer, tokenizer: Tokenizer, *, max_source_length: int,
                 max_target_length: int, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length

    def encode_texts(self, texts: Sequence[str], *, warn: bool = True) -> list[dict[str, Any]]:
        """Texts -> encoded examples (`src_ids`, `src_ext_ids`, `oovs`, `length`), as `encode_summarization`."""
        unk_id, vocab_size = self.tokenizer.unk_id, self.tokenizer.vocab_size
        examples, truncated = [], 0
        for tokens, ids in self.tokenizer.tokenize_and_encode_batch(["" if t is None else t for t in texts]):
            truncated += len(ids) > self.max_source_length
            tokens, ids = tokens[: self.max_source_length], ids[: self.max_source_length]
            extended, oovs = extend_with_oovs(tokens, ids, unk_id=unk_id, vocab_size=vocab_size)
            if not ids:
                ids, extended = [unk_id], [unk_id]
            examples.append({"src_ids": ids, "src_ext_ids": extended, "oovs": oovs, "length": len(ids)})
        if truncated and warn:
            warnings.warn(
                f"{truncated} text(s) longer than the model's source limit of {self.max_source_length} tokens "
                "were truncated", stacklevel=3,
            )
        return examples

    def decode(self, examples: list[dict[str, Any]], config: DecodeConfig) -> list[list[int]]:
        """Extended output ids for a batch of encoded examples (beam size 1: greedy)."""
        batch = to_device(collate_summarization(examples), self.device)
        if config.beam_size == 1:
            return greedy_decode_config(self.model, batch, config)
        return beam_search(self.model, batch, config)

    def summarize(self, texts: Sequence[str], *, beam_size: int = 4, min_length: int = 1, max_length: int = 30,
                  batch_size: int = 32, no_repeat_ngram_size: int = 3, length_penalty: float = 1.0,
                  coverage_penalty: float = 0.0) -> list[str]:
        """One summary per text, in input order. An empty or whitespace-only text gets "" (with a warning)."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        config = DecodeConfig(
            beam_size=beam_size, min_length=min_length, max_length=max_length, length_penalty=length_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size, coverage_penalty=coverage_penalty,
        )
        if batch_size < 1:
            raise NlpLstmError(f"batch_size={batch_size} is invalid: use 1 or more")
        summaries = [""] * len(texts)
        present = [i for i, text in enumerate(texts) if text is not None and text.strip()]
        if len(present) < len(texts):
            warnings.warn(
                f"{len(texts) - len(present)} empty or whitespace-only text(s): their summary is empty", stacklevel=2
            )
        examples = self.encode_texts([texts[i] for i in present])
        order = sorted(range(len(examples)), key=lambda i: examples[i]["length"])  # less padding per batch
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            outputs = self.decode([examples[i] for i in chunk], config)
            for position, ids in zip(chunk, outputs):
                summaries[present[position]] = ids_to_text(ids, examples[position]["oovs"], self.tokenizer)
        return summaries

    def attention(self, text: str, *, beam_size: int = 4, min_length: int = 1, max_length: int = 30,
                  no_repeat_ngram_size: int = 3) -> dict[str, Any]:
        """Decode one text, then replay the output to read the attention and p_gen of every output step.

        Returns:
            `source_tokens` (S,), `output_tokens` (T,), `attention` `(T, S)` tensor, `p_gen` `(T,)` tensor
            (ones for a model without copying), and the `summary` text.
        """
        if not text or not text.strip():
            raise NlpLstmError("the first text is empty: there is no attention to plot; pass a non-empty text")
        [example] = self.encode_texts([text])
        config = DecodeConfig(beam_size=beam_size, min_length=min_length, max_length=max_length,
                              no_repeat_ngram_size=no_repeat_ngram_size)
        [ids] = self.decode([example], config)
        batch = to_device(collate_summarization([example]), self.device)
        rows, gates = [], []
        with decoding_mode(self.model):
            encoder_output = self.model.encode(batch["src_ids"], batch["src_lengths"], batch["src_pad_mask"])
            state = self.model.init_state(encoder_output)
            previous = torch.tensor([self.tokenizer.bos_id], device=self.device)
            for token in ids:
                _, state, attention, p_gen = self.model.step(
                    prev_ids=previous, state=state, encoder_output=encoder_output,
                    src_ext_ids=batch["src_ext_ids"], max_oovs=int(batch["max_oovs"]),
                )
                rows.append(attention[0].cpu())  # (S,)
                gates.append(p_gen[0].cpu())
                previous = torch.tensor([token], device=self.device)
        source_tokens = ids_to_tokens(example["src_ext_ids"], example["oovs"], self.tokenizer)
        source_length = len(source_tokens)
        return {
            "source_tokens": source_tokens,
            "output_tokens": ids_to_tokens(ids, example["oovs"], self.tokenizer),
            "attention": torch.stack(rows) if rows else torch.zeros(0, source_length),
            "p_gen": torch.stack(gates) if gates else torch.zeros(0),
            "summary": ids_to_text(ids, example["oovs"], self.tokenizer),
        }

    def plot_attention(self, text: str, path: str | Path, **decoding: Any) -> None:
        """Write a PNG heatmap of `text`'s attention, with the p_gen strip when the model copies."""
        found = self.attention(text, **decoding)
        if not found["output_tokens"]:
            raise NlpLstmError("the summary of the first text is empty: there is no attention to plot")
        plot_attention(
            found["attention"], found["source_tokens"], found["output_tokens"], path,
            p_gen=found["p_gen"].tolist() if self.model.config.copy else None,
        )


def load_summarizer(path: str | Path, config: dict[str, Any], *, device: torch.device | None = None) -> SummarizerModel:
    """Rebuild a `SummarizerModel` from a model directory whose `config.json` was already read."""
    path = Path(path)
    model_config = from_dict(SummarizerConfig, config["model"], where=f"{path / 'config.json'} [model]")
    model = Summarizer(model_config)
    load_state(path, model)
    return SummarizerModel(
        model, load_model_tokenizer(path, config), max_source_length=config["max_source_length"],
        max_target_length=config["max_target_length"], device=device,
    )


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def score_texts(summarizer: SummarizerModel, sources: list[str], references: list[str], *,
                batch_size: int = 32, **decoding: Any) -> dict[str, Any]:
    """ROUGE of the model's summaries and of the lead-k baseline against `references`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation and empty texts are expected in a corpus
        predictions = summarizer.summarize(sources, batch_size=batch_size, **decoding)
    metrics = rouge_scores(predictions, references)
    k = max(1, round(sum(len(r.split()) for r in references) / max(1, len(references))))
    lead = rouge_scores(lead_baseline(sources, k), references)
    metrics["lead_baseline"] = {"k": k, **{name: lead[name] for name in ("rouge1", "rouge2", "rougeL")}}
    return metrics


def _columns(dataset: datasets.Dataset, column: str) -> list[str]:
    return list(_texts(dataset, [column]))


# --------------------------------------------------------------------------------------------
# Stage functions
# --------------------------------------------------------------------------------------------


def train_summarizer(
    *,
    output_dir: str | Path,
    source: DataSource,
    tokenizer_dir: str | Path | None = None,
    tokenizer_settings: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    training: TrainConfig | None = None,
    max_source_length: int = 400,
    max_target_length: int = 30,
    decoding: dict[str, Any] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Train a pointer-generator summarizer from raw data into the model directory `output_dir`.

    Fits a sentencepiece tokenizer on the training sources and summaries when `tokenizer_dir` is not
    given. The model directory is written only when training succeeds. Returns the metrics:
    `best_epoch`, `stop_reason`, `train_seconds`, and `validation` (and `test`, when there is a test
    split) ROUGE with the lead baseline, decoded with `decoding` (beam search, by default beam 4).
    """
    from nlp_lstm.training import distributed

    training = training or TrainConfig()
    output = Path(output_dir)
    if source is None:
        raise NlpLstmError("train_summarizer needs a data source (--train-file or --dataset)")
    if not source.summary_column:
        raise NlpLstmError("training a summarizer needs --summary-column")
    if source.label_column is not None:  # the DataSource default "label" means nothing here
        source = DataSource(**{**asdict(source), "label_column": None, "binarize": None})
    with distributed.process_group(pick_device(device)) as torch_device:
        main = distributed.is_main()

        def prepare():
            # Rank 0 first (`main_first`): it clears the output, fits the tokenizer and fills the
            # datasets cache; the other ranks reuse them.
            if not resume and main:
                start_run_dir(output, overwrite=overwrite)
            splits = load_splits(source)
            if "validation" not in splits:
                raise NlpLstmError("no validation split; give --validation-file or leave validation_fraction > 0")
            # One vocabulary for sources and summaries (See et al. 2017, sec. 3): summary-only words get ids too.
            tokenizer = resume_or_fit_tokenizer(
                output, splits["train"], [source.text_column, source.summary_column], tokenizer_dir,
                {**DEFAULT_TOKENIZER, **(tokenizer_settings or {})}, reuse=resume or not main,
            )
            encoded = {
                split: encode_summarization(
                    data, tokenizer, text_column=source.text_column, summary_column=source.summary_column,
                    max_source_length=max_source_length, max_target_length=max_target_length,
                )
                for split, data in splits.items()
            }
            return splits, tokenizer, encoded

        splits, tokenizer, encoded = distributed.main_first(prepare)
        config = from_dict(SummarizerConfig, {"vocab_size": tokenizer.vocab_size, **(model or {})}, where="model settings")
        if training.coverage_from_epoch and not config.coverage:
            raise NlpLstmError("coverage_from_epoch is set but the model has coverage = false; turn coverage on")
        seed_everything(training.seed)  # initial weights depend on the seed only, not on what ran before
        network = Summarizer(config)
        task = SummarizationTask(tokenizer, training=training, max_length=max_target_length)
        result = fit(
            network, task=task, train_data=encoded["train"], validation_data=encoded["validation"], config=training,
            run_dir=output, device=torch_device, resume=resume, progress=progress,
        )
        metrics: dict[str, Any] | None = None
        if main:  # the other ranks wait in `broadcast_object` below
            network.load_state_dict(result.best_state)
            metrics = _save_summarizer(
                output, network, tokenizer, result, splits, source=source, config=config, training=training,
                max_source_length=max_source_length, max_target_length=max_target_length, decoding=decoding,
                device=torch_device,
            )
        return distributed.broadcast_object(metrics)


def _save_summarizer(output: Path, network: Summarizer, tokenizer: Tokenizer, result, splits, *, source: DataSource,
                     config: SummarizerConfig, training: TrainConfig, max_source_length: int, max_target_length: int,
                     decoding: dict[str, Any] | None, device: torch.device) -> dict[str, Any]:
    """Score the best weights on validation (and test) and write the model directory atomically."""
    summarizer = SummarizerModel(network, tokenizer, max_source_length=max_source_length,
                                 max_target_length=max_target_length, device=device)
    decode_settings = {"beam_size": 4, "min_length": 1, "max_length": max_target_length, **(decoding or {})}
    metrics: dict[str, Any] = {
        "best_epoch": result.best_epoch, "stop_reason": result.stop_reason,
        "train_seconds": round(result.seconds, 1), "decoding": decode_settings,
    }
    for split in ("validation", "test"):
        if split in splits:
            metrics[split] = score_texts(
                summarizer, _columns(splits[split], source.text_column),
                _columns(splits[split], source.summary_column), **decode_settings,
            )
    with staged_directory(output) as staging:
        save_model(staging, kind="summarizer", state=network.state_dict(), tokenizer=tokenizer, config={
            "model": asdict(config), "max_source_length": max_source_length,
            "max_target_length": max_target_length, "decoding": decode_settings, "training": asdict(training),
            "columns": {"text": source.text_column, "summary": source.summary_column},
        })
        atomic_write_json(staging / "metrics.json", metrics)
        plot_training_curves(result.log, staging / "plots" / "training_curves.png")
        first = splits.get("test", splits["validation"])
        head = _columns(first.take(20), source.text_column)
        text = next((t for t in head if t.strip()), None)
        if text is not None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a truncated example is fine for a picture
                    summarizer.plot_attention(
                        text, staging / "plots" / "attention_example.png",
                        beam_size=decode_settings["beam_size"], max_length=decode_settings["max_length"],
                    )
            except NlpLstmError:
                pass  # an empty example summary has nothing to draw
        keep_run_files(output, staging)
    return metrics


def summarize(model_dir: str | Path, texts: Sequence[str], *, beam_size: int = 4, min_length: int = 1,
              max_length: int = 30, attention_plot: str | Path | None = None, device: str = "auto",
              batch_size: int = 32) -> list[dict[str, str]]:
    """Summarize each text with a saved summarizer: `[{"text", "summary"}, ...]` in input order.

    `attention_plot` writes a PNG heatmap of the first non-empty text's attention (and p_gen).
    """
    config = read_model_config(model_dir, expect="summarizer")
    summarizer = load_summarizer(model_dir, config, device=pick_device(device))
    if isinstance(texts, str):
        texts = [texts]
    summaries = summarizer.summarize(texts, beam_size=beam_size, min_length=min_length, max_length=max_length,
                                     batch_size=batch_size)
    if attention_plot is not None:
        first = next((t for t in texts if t and t.strip()), None)
        if first is None:
            raise NlpLstmError("--attention-plot needs a non-empty text")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # already warned above
            summarizer.plot_attention(first, attention_plot, beam_size=beam_size, min_length=min_length,
                                      max_length=max_length)
    return [{"text": text, "summary": summary} for text, summary in zip(texts, summaries)]


def evaluate_summarizer(model_dir: str | Path, source: DataSource, *, split: str = "test", device: str = "auto",
                        plots_dir: str | Path | None = None, beam_size: int = 4, min_length: int = 1,
                        max_length: int | None = None, batch_size: int = 32) -> dict[str, Any]:
    """ROUGE-1/2/L (F1 x 100) of a saved summarizer on one split, beside the lead-k baseline.

    Returns `rouge1`, `rouge2`, `rougeL`, `count`, `split`, `lead_baseline` (`k` and its ROUGE), and
    the `decoding` settings used. `plots_dir` receives an attention heatmap of the split's first text.
    """
    config = read_model_config(model_dir, expect="summarizer")
    if not source.summary_column:
        raise NlpLstmError("evaluating a summarizer needs --summary-column (the reference summaries)")
    if source.label_column is not None:
        source = DataSource(**{**asdict(source), "label_column": None, "binarize": None})
    summarizer = load_summarizer(model_dir, config, device=pick_device(device))
    data = load_split(source, split)
    decoding = {"beam_size": beam_size, "min_length": min_length,
                "max_length": max_length or config.get("decoding", {}).get("max_length", 30)}
    sources = _columns(data, source.text_column)
    metrics = score_texts(summarizer, sources, _columns(data, source.summary_column), batch_size=batch_size, **decoding)
    metrics["split"] = split
    metrics["decoding"] = decoding
    if plots_dir is not None:
        first = next((t for t in sources if t.strip()), None)
        if first is not None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a truncated example is fine for a picture
                    summarizer.plot_attention(first, Path(plots_dir) / "attention_example.png", **decoding)
            except NlpLstmError:
                pass
    return metrics
