"""Classifier defaults judged on several corpora, each beside TF-IDF + logistic regression on the same split.

    .venv/bin/python benchmarks/sweep_defaults.py --corpora vader_binary vader_domain wiki_topic tweets3 hedge \
        --settings defaults defaults+glove --seeds 13 14 15 --threads 1 --out runs/sweep

Corpora (fixed seeded splits): `vader_binary` is the shared 80/10/10 VADER split (label = score > 0,
|score| >= 0.5; `../shared/data/splits/vader/`, or `--vader-split DIR`), `vader_domain` the 4-way
domain of every VADER text (`data/vader_sentiment.jsonl.gz`), `wiki_topic` the 12 topics of the
Wikipedia leads (`data/wiki_descriptions_en.jsonl.gz`); these two are cut 80/10/10 by
`DataSource`'s seeded rule. `tweets3` (3-way tweet sentiment) and `hedge` (CoNLL-2010 uncertainty)
are the shared fixed splits (`../shared/data/splits/`). Settings: `defaults` (the CLI's `train
classifier` defaults), `defaults+glove` (the defaults with `--embeddings vectors/glove.6B.50d.npy`:
run `benchmarks/get_glove.py` first), `lstm-only` (the defaults without the linear part),
`previous` (the defaults before they were measured), `candidate` (the measured BiLSTM alone),
`concat` (the candidate with concat pooling), `NAME+pretrained` (`pretrain` `--lm-epochs` epochs on
the training texts, then `--init-from` with discriminative learning rates, `--layer-lr-decay`). Prints one row per (corpus, setting): test accuracy, macro-F1, ECE, seconds; the
TF-IDF + LR row (C chosen on validation) comes first for each corpus. Results also go to
`OUT/results.jsonl`. scikit-learn is a dev dependency only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SPLITS = Path(__file__).resolve().parents[2] / "shared" / "data" / "splits"


def sources(vader_split: Path):
    from nlp_lstm.data.sources import DataSource

    return {
        "vader_binary": DataSource(train_file=str(vader_split / "train.jsonl.gz"),
                                   validation_file=str(vader_split / "validation.jsonl.gz"),
                                   test_file=str(vader_split / "test.jsonl.gz")),
        "vader_domain": DataSource(train_file="data/vader_sentiment.jsonl.gz", label_column="domain"),
        "wiki_topic": DataSource(train_file="data/wiki_descriptions_en.jsonl.gz", text_column="extract",
                                 label_column="topic"),
        **{name: DataSource(train_file=str(SPLITS / name / "train.jsonl.gz"),
                            validation_file=str(SPLITS / name / "validation.jsonl.gz"),
                            test_file=str(SPLITS / name / "test.jsonl.gz")) for name in ("tweets3", "hedge")},
    }


def tfidf(source) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    from nlp_lstm.data.sources import load_splits

    splits = load_splits(source)
    text, label = source.text_column, source.label_column
    started = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    train = vectorizer.fit_transform(splits["train"][text])
    best = None
    for c in (1.0, 4.0, 16.0):
        model = LogisticRegression(C=c, max_iter=3000).fit(train, splits["train"][label])
        validation = accuracy_score(splits["validation"][label], model.predict(vectorizer.transform(splits["validation"][text])))
        if best is None or validation > best[0]:
            best = (validation, model, c)
    predicted = best[1].predict(vectorizer.transform(splits["test"][text]))
    truth = splits["test"][label]
    return {"accuracy": accuracy_score(truth, predicted), "macro_f1": f1_score(truth, predicted, average="macro"),
            "ece": None, "seconds": time.perf_counter() - started, "C": best[2]}


# Each setting in full (model, tokenizer, training), so a row means the same whatever the defaults are.
SETTINGS = {
    "previous": {"model": {"embedding_dim": 128, "hidden_size": 128, "pooling": "max", "dropout": 0.3,
                           "word_ngrams": 0},
                 "tokenizer": {"kind": "spacy", "vocab_size": 20000},
                 "training": {"epochs": 10, "batch_size": 32, "learning_rate": 2e-3, "patience": 3,
                              "weight_decay": 0.01}},
    "candidate": {"model": {"embedding_dim": 256, "hidden_size": 256, "pooling": "mean", "dropout": 0.5,
                            "word_ngrams": 0},
                  "tokenizer": {"kind": "sentencepiece", "vocab_size": 8000},
                  "training": {"epochs": 8, "batch_size": 64, "learning_rate": 3e-3, "patience": 2,
                               "weight_decay": 0.1}},
}
SETTINGS["spacy-candidate"] = {**SETTINGS["candidate"], "tokenizer": SETTINGS["previous"]["tokenizer"]}
SETTINGS["concat"] = {**SETTINGS["candidate"], "model": {**SETTINGS["candidate"]["model"], "pooling": "concat"}}
# The CLI defaults with one change each (model settings over the defaults; tokenizer and training as the CLI's).
VARIANTS = {"defaults+glove": {"embeddings": "vectors/glove.6B.50d.npy"},
            "defaults+glove-frozen": {"embeddings": "vectors/glove.6B.50d.npy", "freeze_embeddings": True},
            "lstm-only": {"word_ngrams": 0}}


def lstm(source, setting: str, out: Path, lm_epochs: int = 1, layer_lr_decay: float = 2.6, seed: int | None = None
         ) -> dict:
    import nlp_lstm
    from nlp_lstm.config import TrainConfig

    started = time.perf_counter()
    extra = {}
    if setting == "defaults":
        model, tokenizer, training = {}, None, {}
    elif setting in VARIANTS:
        model, tokenizer, training = dict(VARIANTS[setting]), None, {}
    elif setting.endswith("+pretrained"):  # e.g. candidate+pretrained: pretrain on the training texts first
        base = SETTINGS[setting.removesuffix("+pretrained")]
        lm, tokenizer = out / "lm", base["tokenizer"]
        lm_metrics = nlp_lstm.pretrain(output_dir=lm, source=source, tokenizer_settings=tokenizer,
                                       training=TrainConfig(epochs=lm_epochs), overwrite=True, progress=False,
                                       model={k: base["model"][k] for k in ("embedding_dim", "hidden_size")})
        model = {**base["model"], "init_from": str(lm)}
        extra = {"lm_perplexity": lm_metrics["validation"]["perplexity"], "lm_seconds": time.perf_counter() - started}
        training = {**base["training"], "layer_lr_decay": layer_lr_decay}
    else:
        model, tokenizer, training = (SETTINGS[setting][key] for key in ("model", "tokenizer", "training"))
    from nlp_lstm.stages.classification import default_training

    training = default_training(**training, **({} if seed is None else {"seed": seed}))
    metrics = nlp_lstm.train(output_dir=out / "model", source=source, tokenizer_settings=tokenizer, model=model,
                             training=training, overwrite=True, progress=False)
    test = metrics["test"]
    linear = metrics.get("linear_part", {})
    return {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "ece": test["ece"],
            "ece_before_scaling": test["ece_before_scaling"], "seconds": time.perf_counter() - started,
            "best_epoch": metrics["best_epoch"], "mix": linear.get("mix"), "c": linear.get("c"),
            "embeddings": metrics.get("embeddings", {}).get("coverage"), **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", nargs="+", default=["vader_binary", "vader_domain", "wiki_topic"])
    parser.add_argument("--settings", nargs="+", default=["previous", "candidate"])
    parser.add_argument("--vader-split", type=Path, default=SPLITS / "vader")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/sweep"))
    parser.add_argument("--lm-epochs", type=int, default=1, help="pretraining epochs of the NAME+pretrained settings")
    parser.add_argument("--layer-lr-decay", type=float, default=2.6,
                        help="fine-tuning's discriminative learning-rate decay in the NAME+pretrained settings (1: one rate)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF + LR rows (already measured)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[None],
                        help="training seeds of the LSTM rows, each a row (default: the settings' own)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    corpora = sources(args.vader_split)
    print(f"{'corpus':<14} {'setting':<22} {'accuracy':>9} {'macro-F1':>9} {'ECE':>7} {'seconds':>8}", flush=True)
    for corpus in args.corpora:
        rows = [] if args.no_baseline else [("tfidf+lr", lambda: tfidf(corpora[corpus]))]
        rows += [(f"{setting}" + ("" if seed is None else f"@{seed}"),
                  lambda s=setting, seed=seed: lstm(corpora[corpus], s, args.out / corpus / s, args.lm_epochs,
                                                    args.layer_lr_decay, seed))
                 for seed in args.seeds for setting in args.settings]
        for setting, run in rows:
            result = run()
            ece = "" if result["ece"] is None else f"{result['ece']:.4f}"
            print(f"{corpus:<14} {setting:<22} {result['accuracy']:>9.4f} {result['macro_f1']:>9.4f} {ece:>7} "
                  f"{result['seconds']:>8.0f}", flush=True)
            with open(args.out / "results.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps({"corpus": corpus, "setting": setting, **result}) + "\n")


if __name__ == "__main__":
    main()
