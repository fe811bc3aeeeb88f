"""Feasibility of the BiLSTM-CRF tagger on the fixed tagging splits (issue 24, part 2).

A plain training loop (Adam, batches of similar lengths, gradient clipping, best validation epoch
kept) over `models/tagger.py`, until the train stage exists. Reports the test split's token accuracy
and, for span tags, strict span F1 (seqeval strict mode; `metrics/spans.py`), beside the peers of
the issue (most-frequent tag, sklearn-crfsuite feature CRF).

    PYTHONPATH=$PWD python benchmarks/bench_tagger.py --corpus turkish_pos --decoder crf
    PYTHONPATH=$PWD python benchmarks/bench_tagger.py --corpus wnut16_ner --decoder softmax

The corpora are in ../shared/data/splits (WNUT-16 is for benchmarks only: never commit it).

The recipe's defaults come from `TAGGER_TRAINING` (models/tagger.py); `--set FIELD=VALUE` overrides a
`TaggerConfig` field. How the defaults were chosen, run by run: BENCHMARKS.md, "Tagger defaults".

Measured 2026-12-06 with the earlier defaults (char CNN, 50 filters) on the 2-core box shared with
other jobs (load 3-8), 1 thread (30 epochs at most, patience 5, a 900 s budget where noted "cut");
test split, best validation epoch:

| corpus | decoder | vectors | epochs (best) | train s | test | tag sent/s |
|---|---|---|---|---|---|---|
| turkish_pos | crf | - | 30 (25) | 614 | accuracy 0.9409 (validation 0.9519) | 1107 |
| turkish_pos | crf | - | 21 (21) cut | 873 | accuracy 0.9404 | 394 (load 7) |
| turkish_pos | softmax | - | 19 (14) | 440 | accuracy 0.9373 | 562 (load 6) |
| wnut16_ner | crf | - | 30 (24) | 409 | span F1 0.4502 | - |
| wnut16_ner | crf | GloVe 6B 50d | 19 (18) cut | 877 | span F1 0.5062 | 324 (load 8) |
| wnut16_ner | softmax | - | 28 (23) | 220 | span F1 0.3917 (25 tags repaired) | 828 (load 6) |
| turkish_predicates | crf | - | 30 (30) | 1079 | span F1 0.4627, token accuracy 0.6706, ECE 0.179 | 1636 |

Side by side (`--speed-only`, untrained weights, same process, load 4.5, median of 5): Turkish test
CRF 848 vs softmax 1009 sentences/s; WNUT test 633 vs 616.

Peers (issue 24): Turkish most frequent tag 0.894, feature CRF 0.933; WNUT 0.299, 0.383. Speeds
come from different loads: compare them only within a row's note.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gzip
import json
import statistics
import time
from pathlib import Path

import torch

from nlp_lstm.data.predicates import predicate_argument_corpus
from nlp_lstm.data.tagging import TaggingVocab, fit_with_vectors, length_batches
from nlp_lstm.metrics.spans import SpanCounts, TokenCounts, detect_scheme, repair, token_calibration
from nlp_lstm.models.tagger import TAGGER_TRAINING, SequenceTagger, TaggerConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "splits"
PEERS = {"turkish_pos": ("token accuracy", 0.894, 0.933, 0.95), "wnut16_ner": ("strict span F1", 0.299, 0.383, 0.45),
         # the syntactic proxy for SRL (data/predicates.py): no peers measured
         "turkish_predicates": ("strict span F1", None, None, None)}
TREEBANK = DATA.parent / "turkish_treebank"


def read_split(corpus: str, split: str):
    """(tokens, tags, features or None) of one split."""
    if corpus == "turkish_predicates":
        return predicate_split(split)
    tokens, tags = [], []
    with gzip.open(DATA / corpus / f"{split}.jsonl.gz", "rt", encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            if row["tokens"]:
                tokens.append(row["tokens"])
                tags.append(row["tags"])
    return tokens, tags, None


def predicate_split(split: str):
    """One sequence per verb of the treebank's sentences in `split` of turkish_pos (same sentences)."""
    in_split = {tuple(tokens) for tokens in read_split("turkish_pos", split)[0]}
    tokens, tags, features = [], [], []
    for name in ("web", "wiki"):
        corpus = predicate_argument_corpus(TREEBANK / f"{name}.conllu.gz")
        for row in range(len(corpus)):
            if tuple(corpus.tokens[row]) in in_split:
                tokens.append(corpus.tokens[row])
                tags.append(corpus.tags[row])
                features.append(corpus.features[row])
    return tokens, tags, features


def evaluate(model: SequenceTagger, vocab: TaggingVocab, tokens, tags, features, *, batch_size: int = 64) -> dict:
    model.eval()
    scheme = detect_scheme(vocab.tags)
    token_counts, span_counts, calibration = TokenCounts(), SpanCounts(scheme=scheme), None
    repaired = 0
    for indices in length_batches([len(t) for t in tokens], batch_size):
        batch = vocab.encode([tokens[i] for i in indices], features=pick(features, indices))
        emissions = model(batch)
        paths = model.decode(batch, emissions)
        # Gold tags the training data never used (rare relations of the predicate proxy) count as
        # errors in accuracy and spans, and are left out of the calibration only.
        gold = torch.full_like(batch.word_ids, -1)
        for row, index in enumerate(indices):
            gold[row, : len(tags[index])] = torch.tensor([-1 if vocab.tag_index(t) is None else vocab.tag_index(t)
                                                          for t in tags[index]])
        calibration = token_calibration(model.marginals(batch, emissions), gold.clamp(min=0), batch.pad_mask | (gold < 0),
                                        calibration)
        for index, path in zip(indices, paths):
            predicted, changed = repair([vocab.tags[i] for i in path], scheme)
            repaired += changed
            token_counts.update(tags[index], predicted)
            span_counts.update(tags[index], predicted)
    return {"token_accuracy": token_counts.accuracy, "span_f1": span_counts.micro()["f1"],
            "ece": calibration.expected_calibration_error(), "repaired_tags": repaired}


def pick(features, indices):
    return None if features is None else [features[i] for i in indices]


def tag_seconds(model: SequenceTagger, vocab: TaggingVocab, split) -> float:
    """Encode + emissions + Viterbi (or argmax) over the split, batches of 64 by length."""
    model.eval()
    started = time.perf_counter()
    with torch.no_grad():
        for indices in length_batches([len(t) for t in split[0]], 64):
            model.decode(vocab.encode([split[0][i] for i in indices], features=pick(split[2], indices)))
    return time.perf_counter() - started


def compare_speed(vocab: TaggingVocab, config: TaggerConfig, split, rounds: int = 5) -> None:
    """Sentences/s of the two decoders side by side (weights do not change the work: untrained)."""
    models = {decoder: SequenceTagger(dataclasses.replace(config, decoder=decoder)) for decoder in ("crf", "softmax")}
    times = {decoder: [] for decoder in models}
    for _ in range(rounds):
        for decoder, model in models.items():
            times[decoder].append(tag_seconds(model, vocab, split))
    for decoder, seconds in times.items():
        print(f"{decoder}: {len(split[0]) / statistics.median(seconds):.0f} sentences/s (median of {rounds})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=sorted(PEERS), default="turkish_pos")
    parser.add_argument("--decoder", choices=("crf", "softmax"), default="crf")
    recipe = TAGGER_TRAINING
    parser.add_argument("--epochs", type=int, default=recipe["max_epochs"])
    parser.add_argument("--batch-size", type=int, default=recipe["batch_size"])
    parser.add_argument("--learning-rate", type=float, default=recipe["learning_rate"])
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default=recipe["optimizer"])
    parser.add_argument("--clip-norm", type=float, default=recipe["clip_norm"])
    parser.add_argument("--lr-decay", type=float, default=recipe["lr_decay"],
                        help="learning rate lr / (1 + decay * finished epochs) (Ma & Hovy 2016: 0.05)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a TaggerConfig field (int, float or string), repeatable: --set char_encoder=lstm")
    parser.add_argument("--min-count", type=int, default=recipe["min_count"])
    parser.add_argument("--patience", type=int, default=recipe["patience"], help="stop after this many epochs without a better validation score")
    parser.add_argument("--time-budget", type=float, default=900.0, help="stop starting epochs after this many seconds")
    parser.add_argument("--embeddings", help="a word vectors file (such as GloVe 6B 50d as .npy + .vocab.txt)")
    parser.add_argument("--speed-only", action="store_true",
                        help="no training: time tagging the test split with a CRF and a softmax tagger, alternating rounds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train, validation, test = (read_split(args.corpus, split) for split in ("train", "validation", "test"))
    vectors = None
    if args.embeddings:
        vocab, vectors, coverage = fit_with_vectors(list(zip(train[0], train[1])), args.embeddings, min_count=args.min_count)
        print(coverage.describe())
    else:
        vocab = TaggingVocab.fit(zip(train[0], train[1]), min_count=args.min_count)
    overrides = {}
    for key, value in (setting.split("=", 1) for setting in args.set):
        kind = type(getattr(TaggerConfig, key, ""))  # the field's default says its type
        overrides[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    config = TaggerConfig(tags=vocab.tags, vocab_size=len(vocab.words), char_vocab_size=len(vocab.chars),
                          decoder=args.decoder, feature_embedding_dim=16 if train[2] is not None else 0,
                          **({"embedding_dim": vectors.shape[1]} if vectors is not None else {}), **overrides)
    if args.speed_only:
        compare_speed(vocab, config, test)
        return
    model = SequenceTagger(config)
    if vectors is not None:
        model.load_word_vectors(vectors)
    if args.optimizer == "sgd":  # Ma & Hovy 2016, sec. 3.1: momentum 0.9
        optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda finished: 1.0 / (1.0 + args.lr_decay * finished))
    generator = torch.Generator().manual_seed(args.seed)
    metric = "span_f1" if config.scheme != "plain" else "token_accuracy"
    print(f"{args.corpus}: {len(train[0])} train sentences, {len(vocab.words)} words, {len(vocab.chars)} chars, "
          f"{len(vocab.tags)} tags ({config.scheme}), decoder {args.decoder}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters; {config}"[:2000], flush=True)
    started = time.perf_counter()
    best, best_state, best_epoch = -1.0, None, 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        total = 0.0
        for indices in length_batches([len(t) for t in train[0]], args.batch_size, generator=generator):
            batch = vocab.encode([train[0][i] for i in indices], [train[1][i] for i in indices], pick(train[2], indices))
            loss = model.loss(batch)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_norm)
            optimizer.step()
            total += loss.item() * len(indices)
        schedule.step()
        scores = evaluate(model, vocab, *validation)
        elapsed = time.perf_counter() - started
        print(f"epoch {epoch}: train loss {total / len(train[0]):.3f}, validation {metric} {scores[metric]:.4f} "
              f"({elapsed:.0f} s)", flush=True)
        if scores[metric] > best:
            best, best_state, best_epoch = scores[metric], copy.deepcopy(model.state_dict()), epoch
        if elapsed * (epoch + 1) / epoch > args.time_budget or epoch - best_epoch >= args.patience:
            break
    train_seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    started = time.perf_counter()
    scores = evaluate(model, vocab, *test)
    test_seconds = time.perf_counter() - started
    seconds_to_tag = tag_seconds(model, vocab, test)
    name, most_frequent, feature_crf, goal = PEERS[args.corpus]
    value = scores[metric]
    print(json.dumps({"corpus": args.corpus, "decoder": args.decoder, "embeddings": args.embeddings, "best_epoch": best_epoch,
                      "epochs_run": epoch, "train_seconds": round(train_seconds, 1),
                      "evaluate_seconds": round(test_seconds, 2),
                      "tag_sentences_per_second": round(len(test[0]) / seconds_to_tag, 1),
                      "test": {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}}))
    print(f"test {name}: {value:.4f} (most frequent tag {most_frequent}, feature CRF {feature_crf}, goal {goal})")
    if args.corpus == "turkish_predicates":
        print("(a syntactic proxy: dependents of each verb labelled by their dependency relation, not semantic roles)")


if __name__ == "__main__":
    main()
