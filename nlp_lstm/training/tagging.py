"""The tagger's task adapter for the shared training loop (`loop.fit`), beside `tasks.py`'s.

Rows are whole sentences: `tokens` and `tags` (names) lists and `length` (the sampler buckets by
it), plus `features` (0/1 per token) when the model reads a feature column. `collate` pads them
into a `TagBatch`'s tensors; gold tags the training data never used (possible in held-out data)
get id -1: they count as errors in accuracy and spans, and are left out of the loss and the
calibration.

Validation scores: token accuracy; for span tags (BIO/BIOES) strict span P/R/F1 micro, macro, per
type, and the confusion of types (`metrics/spans.py`); the ECE of the token marginals (CRF
forward-backward, or the softmax); the mean loss per sentence. The best epoch is chosen by span
micro-F1 for span tags, by token accuracy for plain tags (parts of speech).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import datasets
import torch

from nlp_lstm.data.conll import TaggedCorpus
from nlp_lstm.data.tagging import TagBatch, TaggingVocab
from nlp_lstm.metrics.calibration import CalibrationCounts
from nlp_lstm.metrics.spans import SpanCounts, TokenCounts, repair, split_tag, token_calibration
from nlp_lstm.nn.modes import evaluation_mode
from nlp_lstm.training import distributed

UNKNOWN_TAG = -1


def corpus_dataset(corpus: TaggedCorpus) -> datasets.Dataset:
    """A corpus as rows the loop's length-bucketed sampler and `TaggingTask.collate` read."""
    data: dict[str, list] = {"tokens": corpus.tokens, "tags": corpus.tags,
                             "length": [len(tokens) for tokens in corpus.tokens]}
    if corpus.features is not None:
        data["features"] = corpus.features
    return datasets.Dataset.from_dict(data)


def span_types(tag_lists: Sequence[Sequence[str]]) -> list[str]:
    """The span types (`PER` of `B-PER`) of tags, sorted; empty for plain tags."""
    return sorted({label for tags in tag_lists for tag in tags
                   for prefix, label in [split_tag(tag)] if prefix not in ("", "O") and label})


class TaggingTask:
    """Sentence-level NLL (CRF or softmax); validated by span micro-F1 or token accuracy."""

    def __init__(self, vocab: TaggingVocab, *, scheme: str, types: Sequence[str] = ()) -> None:
        """`types`: every span type the scored splits can hold (the model's and the gold data's),
        the same on every rank, so span counts can be summed over ranks."""
        self.vocab, self.scheme = vocab, scheme
        self.types = sorted(set(types) | set(span_types([vocab.tags])))
        self.metric_name = "token_accuracy" if scheme == "plain" else "span_f1"

    def collate(self, examples: Sequence[dict]) -> dict:
        if hasattr(examples, "table"):  # `collate.ArrowRows`: its columns whole
            columns = examples.table.to_pydict()
        else:
            columns = {name: [row[name] for row in examples] for name in examples[0]}
        batch = self.vocab.encode(columns["tokens"], features=columns.get("features"))
        gold = torch.full_like(batch.word_ids, UNKNOWN_TAG)  # (B, T); -1 at padding too
        for row, tags in enumerate(columns["tags"]):
            ids = [self.vocab.tag_index(tag) for tag in tags]
            gold[row, : len(ids)] = torch.tensor([UNKNOWN_TAG if index is None else index for index in ids])
        return {"word_ids": batch.word_ids, "char_ids": batch.char_ids, "lengths": batch.lengths,
                "pad_mask": batch.pad_mask, "features": batch.features, "gold": gold, "tags": columns["tags"]}

    @staticmethod
    def tag_batch(batch: dict, rows: torch.Tensor | None = None) -> TagBatch:
        """The collated dict as a `TagBatch` (unknown gold tags as id 0: callers mask them), or its `rows`."""
        pick = (lambda tensor: tensor) if rows is None else (lambda tensor: None if tensor is None else tensor[rows])
        return TagBatch(pick(batch["word_ids"]), pick(batch["char_ids"]), pick(batch["lengths"]),
                        pick(batch["pad_mask"]), pick(batch["gold"]).clamp(min=0), pick(batch["features"]))

    def loss(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        # The forward goes through `model` (a DDP wrapper under torchrun sets up the gradient all-reduce there).
        tags = self.tag_batch(batch)
        return distributed.unwrap(model).loss(tags, model(tags))

    def on_epoch_start(self, model: torch.nn.Module, epoch: int) -> None:
        pass

    def evaluate(self, model: torch.nn.Module, batches: Callable[[], Any], *, all_reduce: bool = False) -> dict[str, Any]:
        """Token accuracy, span scores, ECE of the token marginals and the mean loss over `batches()`."""
        network = distributed.unwrap(model)
        tokens, spans, calibration = TokenCounts(), SpanCounts(scheme=self.scheme), CalibrationCounts()
        size = len(self.vocab.tags)
        confusion = torch.zeros(size, size, dtype=torch.float64)  # gold tag id x predicted tag id (known gold)
        sums = torch.zeros(3, dtype=torch.float64)  # loss sum, sentences in the loss, tags repaired
        with evaluation_mode(model):
            for batch in batches():
                tags = self.tag_batch(batch)
                emissions = network(tags)  # (B, T, K)
                gold = batch["gold"]
                whole = ~((gold == UNKNOWN_TAG) & ~batch["pad_mask"]).any(dim=1)  # (B,) every gold tag known
                if bool(whole.any()):
                    rows = whole.nonzero().flatten()
                    sums[0] += float(network.loss(self.tag_batch(batch, rows), emissions[rows])) * len(rows)
                    sums[1] += len(rows)
                unknown = gold == UNKNOWN_TAG
                calibration = token_calibration(network.marginals(tags, emissions), gold.clamp(min=0),
                                                batch["pad_mask"] | unknown, calibration)
                for row, (path, gold_tags) in enumerate(zip(network.decode(tags, emissions), batch["tags"])):
                    predicted, changed = repair([self.vocab.tags[index] for index in path], self.scheme)
                    sums[2] += changed
                    tokens.update(gold_tags, predicted)
                    if self.scheme != "plain":
                        spans.update(gold_tags, predicted)
                    known = gold[row, : len(path)].cpu()
                    keep = known >= 0
                    predicted_ids = torch.tensor(path)[keep]
                    confusion.index_put_((known[keep], predicted_ids), torch.ones(len(predicted_ids), dtype=torch.float64),
                                         accumulate=True)
        if all_reduce:
            tokens = TokenCounts.from_tensor(distributed.all_reduce_sum(tokens.as_tensor()))
            spans = SpanCounts.from_tensor(distributed.all_reduce_sum(spans.as_tensor(self.types)), self.types,
                                           scheme=self.scheme)
            calibration = distributed.all_reduce_counts(calibration)
            confusion = distributed.all_reduce_sum(confusion)
            sums = distributed.all_reduce_sum(sums)
        metrics: dict[str, Any] = {"token_accuracy": tokens.accuracy, "tokens": tokens.total,
                                   "loss": float(sums[0] / max(1.0, float(sums[1])))}
        if self.scheme != "plain":
            micro = spans.micro()
            metrics.update(span_f1=micro["f1"], span_precision=micro["precision"], span_recall=micro["recall"],
                           spans=spans.to_dict())
        metrics["ece"] = calibration.expected_calibration_error()
        metrics["reliability"] = calibration.reliability().to_dict()
        metrics["tag_confusion"] = confusion.round().long().tolist()
        metrics["repaired_predicted_tags"] = int(sums[2])
        return metrics
