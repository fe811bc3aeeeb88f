"""TextClassifier: embed -> BiLSTM -> pooling -> dropout -> linear (DESIGN section 3), plus the logits
of a linear part over word n-gram TF-IDF features (`nn/ngram_linear.py`, `data/word_ngrams.py`;
`word_ngrams = 0` turns it off), fitted after the BiLSTM and stacked with it on validation.

Inputs are token ids (B, T) with an embedding table, or float feature sequences (B, T, D) such as
time series, which skip the embedding: the seed recipe `LSTM(128) -> Dense(1, sigmoid)` is this model
with `input_size=64, bidirectional=False, pooling="last", task="binary"`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from nlp_lstm.config import check_choice, check_fraction, check_positive
from nlp_lstm.data.specials import PAD_ID
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.nn.lstm import LSTM, PEEPHOLES
from nlp_lstm.nn.ngram_linear import NgramLinear
from nlp_lstm.nn.pooling import POOLING, build_pooling, pooled_size

TASKS = ("binary", "multiclass", "multilabel")


@dataclass
class ClassifierConfig:
    """Everything needed to rebuild a `TextClassifier` (the `[model]` table of a pipeline, and the
    `model` entry of a classifier's `config.json`).

    `num_labels`, `task` and `vocab_size` (or `input_size`) come from the data: training fills them
    in, so a pipeline file sets only the sizes and choices below them.
    """

    num_labels: int = 2
    task: str = "multiclass"  # binary | multiclass | multilabel
    vocab_size: int | None = None  # token ids (set from the tokenizer)
    input_size: int | None = None  # float feature sequences (time series) instead of token ids
    # Defaults measured on three corpora (BENCHMARKS.md, "Classifier defaults"), not tuned to one.
    embedding_dim: int = 256
    hidden_size: int = 256
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.5
    peephole: str = "none"  # none (fused kernel) | diagonal | full
    pooling: str = "mean"  # max | mean | last | attention | concat
    max_length: int = 256  # tokens kept per text; longer texts are truncated (with a warning)
    # The longest word n-gram of the linear part beside the BiLSTM (2: unigrams and bigrams, as the
    # TF-IDF + LR baseline); 0 turns the linear part off. Float feature sequences have no words: 0.
    word_ngrams: int = 2
    # Beside them, character n-grams of 2..char_ngrams characters within words (0: none): hedging
    # cues and morphology (BENCHMARKS.md, "Word n-gram linear part": hedge 0.727 -> 0.773 alone).
    char_ngrams: int = 5
    ngram_features: int | None = None  # the fitted n-gram vocabulary's size (set by training)
    # A language model directory (`nlp-lstm pretrain`) whose tokenizer, embedding and encoder weights
    # the classifier starts from (ULMFiT); its sizes must match this config's.
    init_from: str | None = None
    # A word vectors file (`data/vectors.py`: GloVe, word2vec, fastText) the embedding starts from,
    # with a word tokenizer over the training words and the file's most frequent words. Fine-tuned
    # with the rest by default: frozen 50-d GloVe left the BiLSTM underfit on VADER (validation
    # macro-F1 0.774 after 8 epochs against 0.826 after 5 fine-tuned; BENCHMARKS.md, "Pretrained
    # word vectors").
    embeddings: str | None = None
    freeze_embeddings: bool = False

    @property
    def has_linear_part(self) -> bool:
        return bool(self.word_ngrams and self.ngram_features)

    def __post_init__(self) -> None:
        check_choice("task", self.task, TASKS)
        check_choice("pooling", self.pooling, tuple(POOLING))
        check_choice("peephole", self.peephole, tuple(PEEPHOLES))
        if self.vocab_size is not None and self.input_size is not None:
            raise NlpLstmError("model config takes one of vocab_size (token ids) or input_size (float features), not both")
        if self.task == "binary" and self.num_labels != 2:
            raise NlpLstmError(f"task 'binary' needs 2 labels, got {self.num_labels}; use task 'multiclass'")
        check_positive(hidden_size=self.hidden_size, num_layers=self.num_layers, embedding_dim=self.embedding_dim,
                       max_length=self.max_length, num_labels=self.num_labels)
        check_fraction("dropout", self.dropout)
        if not 0 <= self.word_ngrams <= 5:
            raise NlpLstmError(f"word_ngrams must be 0 (no linear part) to 5, got {self.word_ngrams}")
        if self.char_ngrams not in (0, *range(2, 9)):
            raise NlpLstmError(f"char_ngrams must be 0 (none) or 2 to 8, got {self.char_ngrams}")
        if self.input_size is not None:
            self.word_ngrams, self.char_ngrams, self.ngram_features = 0, 0, None
        if self.embeddings is not None and self.init_from is not None:
            raise NlpLstmError("--embeddings and --init-from both give the embedding its start; pick one")


class TextClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        if (config.vocab_size is None) == (config.input_size is None):
            raise NlpLstmError("model config needs exactly one of vocab_size (token ids) or input_size (float features)")
        self.config = config
        if config.vocab_size is not None:
            self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD_ID)
            input_size = config.embedding_dim
        else:
            self.embedding = None
            input_size = config.input_size
        self.encoder = LSTM(
            input_size,
            config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            peephole=config.peephole,
        )
        self.pooling = build_pooling(config.pooling, self.encoder.output_size)
        self.dropout = nn.Dropout(config.dropout)
        # Binary uses one logit + sigmoid (the seed recipe's Dense(1, sigmoid)); otherwise one per label.
        outputs = 1 if config.task == "binary" else config.num_labels
        self.head = nn.Linear(pooled_size(self.pooling, self.encoder.output_size), outputs)
        self.ngrams = NgramLinear(config.ngram_features, outputs) if config.has_linear_part else None

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor, pad_mask: torch.Tensor,
                ngram_ids: torch.Tensor | None = None, ngram_weights: torch.Tensor | None = None, *,
                parts: bool = False):
        """Args:
            inputs: token ids (B, T) long, or features (B, T, D) float.
            lengths: (B,) real lengths.
            pad_mask: (B, T) True at padding.
            ngram_ids, ngram_weights: (B, K) word n-gram feature indices and TF-IDF values (0 at
                padding), for a model with a linear part (`data/word_ngrams.py`).
            parts: return the BiLSTM's and the linear part's logits apart (calibration).
        Returns:
            logits (B, 1) for binary, else (B, num_labels): the BiLSTM head's plus the linear part's;
            with `parts`, the pair `(lstm_logits, linear_logits or None)`.
        """
        # Dropout on the embeddings as well as before the head: with ~15k training texts a BiLSTM
        # overfits within 3 epochs otherwise (measured on the sentiment pipeline).
        embedded = self.dropout(self.embedding(inputs)) if self.embedding is not None else inputs  # (B, T, E)
        logits = self.lstm_logits(embedded, lengths, pad_mask)
        linear = None
        if self.ngrams is not None:
            if ngram_ids is None or ngram_weights is None:
                raise NlpLstmError("this classifier has a word n-gram linear part: pass ngram_ids and ngram_weights "
                                   "(the predictor computes them from the texts)")
            linear = self.ngrams(ngram_ids, ngram_weights)
        if parts:
            return logits, linear
        return logits if linear is None else logits + linear

    def lstm_logits(self, embedded: torch.Tensor, lengths: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """The BiLSTM part from embedded inputs `(B, T, E)` (or features) to its logits `(B, outputs)`:
        what `forward` runs after the embedding, and what `explain` integrates gradients through."""
        outputs, (h_n, _) = self.encoder(embedded, lengths, need_cell_state=False)  # (B, T, dirs*H)
        directions = 2 if self.config.bidirectional else 1
        final_hidden = h_n[-directions:].transpose(0, 1).reshape(embedded.size(0), -1)  # (B, dirs*H), last layer
        pooled = self.pooling(outputs, pad_mask, final_hidden)
        return self.head(self.dropout(pooled))

    def training_loss(self, parts: tuple[torch.Tensor, torch.Tensor | None], labels: torch.Tensor) -> torch.Tensor:
        """The BiLSTM's own loss: the linear part is fitted apart (`training/linear_fit.py`), after
        training, so the BiLSTM learns what it can alone and stacking on validation weighs the two."""
        return self.loss(parts[0], labels)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.config.task == "binary":
            return F.binary_cross_entropy_with_logits(logits.squeeze(-1), labels.float())
        if self.config.task == "multilabel":
            return F.binary_cross_entropy_with_logits(logits, labels.float())
        return F.cross_entropy(logits, labels)

    @torch.no_grad()
    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-label probabilities (B, num_labels), for every task."""
        if self.config.task == "binary":
            positive = torch.sigmoid(logits.squeeze(-1))
            return torch.stack([1 - positive, positive], dim=-1)
        if self.config.task == "multilabel":
            return torch.sigmoid(logits)
        return logits.softmax(dim=-1)

    @torch.no_grad()
    def predict_labels(self, logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
        """(B,) class indices, or (B, L) 0/1 for multi-label."""
        scores = self.scores(logits)
        if self.config.task == "multilabel":
            return (scores >= threshold).long()
        return scores.argmax(dim=-1)
