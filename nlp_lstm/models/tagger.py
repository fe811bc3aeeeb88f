"""SequenceTagger: words -> BiLSTM -> per-token tag scores -> CRF or softmax (Huang et al. 2015;
Lample et al. 2016; Ma & Hovy 2016).

One sentence of T words, batched `(B, T)`:

    w_t = E_word[word_key(x_t)]                    (B, T, E)   word dropout: id -> <unk> w.p. p
    c_t = CharCNN | CharLSTM(E_char[chars(x_t)])  (B, T, F)   character-level word features
    f_t = E_feature[feature_t]                     (B, T, D_f) optional 0/1 feature (predicate)
    h_t = BiLSTM(dropout([w_t; c_t; f_t]))         (B, T, 2H)  `nn/lstm.py`, exact ragged lengths
    s_t = W dropout(h_t) + b                       (B, T, K)   emission scores
    y   = Viterbi(s) under `nn/crf.py`, or argmax_k s_t   (decoder "crf" | "softmax")

Characters go through a CNN (Ma & Hovy 2016, sec. 2.1: width 3, max over positions), or a BiLSTM
(Lample et al. 2016, sec. 2.2) with `char_encoder="lstm"`. Reimers & Gurevych 2017 (sec. 7.4)
found no significant difference between the two across five English/German tasks; Plank et al. 2016
credit the char BiLSTM for morphologically rich languages, and on the Turkish treebank here it was
ahead on validation (0.9566 vs 0.9519, one seed each; BENCHMARKS.md, "Tagger defaults"), at about
the same tagging speed.

`TAGGER_TRAINING` is the training recipe the defaults were chosen with; the train stage uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from nlp_lstm.config import check_choice, check_fraction, check_positive
from nlp_lstm.data.specials import PAD_ID, UNK_ID
from nlp_lstm.data.tagging import TagBatch
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.metrics.spans import detect_scheme
from nlp_lstm.nn.crf import CRF, span_constraints
from nlp_lstm.nn.lstm import LSTM

DECODERS = ("crf", "softmax")
CHAR_ENCODERS = ("cnn", "lstm")

# How a tagger with the defaults below is trained (measured with benchmarks/bench_tagger.py; BENCHMARKS.md,
# "Tagger defaults"). Adam (Reimers & Gurevych 2017, sec. 7.1: lower variance than SGD); global gradient
# norm rescaled to at most `clip_norm` (their "gradient normalization", sec. 7.2); batches of similar
# lengths; after each epoch the validation score (token accuracy, or strict span F1 for span tags) picks
# the epoch whose weights are kept, and `patience` epochs without a better one stop training.
# `lr_decay`: learning rate lr / (1 + lr_decay * finished epochs) (Ma & Hovy 2016, sec. 3.1).
TAGGER_TRAINING = {
    "optimizer": "adam",
    "learning_rate": 2e-3,
    "lr_decay": 0.0,
    "batch_size": 16,
    "max_epochs": 50,
    "patience": 10,  # WNUT-16's validation F1 swings by 0.03 between epochs: 5 stopped one run at epoch 18 of a climb to 30
    "clip_norm": 5.0,
    "min_count": 2,  # training words seen once are <unk> (the vocabulary's min_count)
}


@dataclass
class TaggerConfig:
    """Everything needed to rebuild a `SequenceTagger`. `tags`, `vocab_size` and `char_vocab_size`
    come from the training data (`TaggingVocab`); the rest are choices."""

    tags: list[str] = field(default_factory=list)
    vocab_size: int = 2
    char_vocab_size: int = 2
    decoder: str = "crf"  # crf | softmax
    # Forbid transitions no valid BIO/BIOES sequence takes (CRF only; "plain" tags have none).
    constrained: bool = True
    embedding_dim: int = 100  # Lample et al. 2016: 100-d word embeddings
    char_embedding_dim: int = 30  # Ma & Hovy 2016: 30-d characters, 30 filters of width 3
    # cnn | lstm. "lstm" measured better (BENCHMARKS.md, "Tagger defaults") but the predictor and its ONNX
    # graph (inference/tagger_batch.py) read CharCNN's layers directly: the default moves once they read CharLSTM.
    char_encoder: str = "cnn"
    char_filters: int = 50  # char_encoder "cnn": features per word
    char_kernel_size: int = 3
    char_hidden_size: int = 50  # char_encoder "lstm": per direction (Lample et al. 2016: 25; Plank et al. 2016: 100)
    hidden_size: int = 128  # per direction
    num_layers: int = 1
    dropout: float = 0.5  # on the BiLSTM's inputs and outputs (Lample et al. 2016, sec. 4.3)
    word_dropout: float = 0.05  # training words replaced by <unk>, so <unk> is learnt
    feature_embedding_dim: int = 0  # > 0: embed an optional 0/1 per-token feature (He et al. 2017: 100)
    embeddings: str | None = None  # a word vectors file the word embedding starts from
    freeze_embeddings: bool = False
    # spaCy's blank(language) rule tokenizer splits raw text into words at prediction time ("xx":
    # multi-language rules); the training data is already split.
    language: str = "xx"

    @property
    def num_tags(self) -> int:
        return len(self.tags)

    @property
    def num_labels(self) -> int:  # what `config.json` labels are counted against (`model_dir`)
        return len(self.tags)

    @property
    def scheme(self) -> str:
        return detect_scheme(self.tags)

    def __post_init__(self) -> None:
        check_choice("decoder", self.decoder, DECODERS)
        check_choice("char_encoder", self.char_encoder, CHAR_ENCODERS)
        check_positive(vocab_size=self.vocab_size, char_vocab_size=self.char_vocab_size,
                       embedding_dim=self.embedding_dim, char_embedding_dim=self.char_embedding_dim,
                       char_filters=self.char_filters, char_kernel_size=self.char_kernel_size,
                       char_hidden_size=self.char_hidden_size,
                       hidden_size=self.hidden_size, num_layers=self.num_layers)
        check_fraction("dropout", self.dropout)
        check_fraction("word_dropout", self.word_dropout)
        if self.feature_embedding_dim < 0:
            raise NlpLstmError(f"feature_embedding_dim must be >= 0 (0: no feature), got {self.feature_embedding_dim}")
        self.scheme  # noqa: B018 - refuses tag sets that mix schemes, here where the config is loaded


class CharCNN(nn.Module):
    """Character-level word features: embed, convolve, max over the word's characters.

    `(N, L)` char ids -> `(N, F)`; padding characters never win the max of a word with characters."""

    def __init__(self, char_vocab_size: int, embedding_dim: int, filters: int, kernel_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(char_vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.conv = nn.Conv1d(embedding_dim, filters, kernel_size, padding=kernel_size // 2)
        self.output_size = filters

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(char_ids).transpose(1, 2)  # (N, C, L)
        convolved = self.conv(embedded)[:, :, : char_ids.shape[1]]  # (N, F, L); an even kernel adds one step
        # A large finite fill, not -inf: a padding word (all characters padding) then gives finite
        # features that the caller zeroes, and no inf enters the graph.
        convolved = convolved.masked_fill((char_ids == PAD_ID).unsqueeze(1), -1e4)
        return torch.tanh(convolved.max(dim=2).values)  # (N, F)


class CharLSTM(nn.Module):
    """Character-level word features: embed, run a BiLSTM over the word's characters, and join the
    forward state after the last character with the backward state after the first (Lample et al.
    2016, sec. 2.2; Plank et al. 2016 credit it for morphologically rich languages).

    `(N, L)` char ids -> `(N, 2H)`; padding characters are never read (exact lengths)."""

    def __init__(self, char_vocab_size: int, embedding_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(char_vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.encoder = LSTM(embedding_dim, hidden_size, bidirectional=True)
        self.output_size = 2 * hidden_size

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        # A padding word (no characters) reads one padding character: finite features the caller zeroes.
        lengths = (char_ids != PAD_ID).sum(dim=1).clamp(min=1)  # (N,)
        _, (h_n, _) = self.encoder(self.embedding(char_ids), lengths, need_cell_state=False)  # h_n (2, N, H)
        return torch.cat([h_n[0], h_n[1]], dim=-1)  # (N, 2H)


def char_encoder(config: TaggerConfig) -> nn.Module:
    """The character encoder the config names, with its `output_size`."""
    if config.char_encoder == "lstm":
        return CharLSTM(config.char_vocab_size, config.char_embedding_dim, config.char_hidden_size)
    return CharCNN(config.char_vocab_size, config.char_embedding_dim, config.char_filters, config.char_kernel_size)


class SequenceTagger(nn.Module):
    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        if not config.tags:  # settings may come without them (CLI, pipeline); a network may not
            raise NlpLstmError("a tagger needs its tag names (set from the training data)")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD_ID)
        self.chars = char_encoder(config)
        self.feature_embedding = (nn.Embedding(2, config.feature_embedding_dim)
                                  if config.feature_embedding_dim else None)
        input_size = config.embedding_dim + self.chars.output_size + config.feature_embedding_dim
        self.encoder = LSTM(input_size, config.hidden_size, num_layers=config.num_layers, bidirectional=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.emissions = nn.Linear(self.encoder.output_size, config.num_tags)
        self.crf = None
        if config.decoder == "crf":
            constraints = span_constraints(config.tags, config.scheme) if config.constrained else None
            self.crf = CRF(config.num_tags, constraints=constraints)

    def forward(self, batch: TagBatch) -> torch.Tensor:
        """Emission scores `(B, T, K)` of a batch."""
        return self.emission_scores(batch.word_ids, batch.char_ids, batch.lengths, batch.features)

    def emission_scores(self, word_ids: torch.Tensor, char_ids: torch.Tensor, lengths: torch.Tensor,
                        features: torch.Tensor | None = None) -> torch.Tensor:
        """Emission scores from plain tensors (the graph an ONNX export traces; decoding stays outside).

        Args:
            word_ids: `(B, T)`; char_ids: `(B, T, L)`; lengths: `(B,)`; features: `(B, T)` 0/1 or None.
        Returns:
            `(B, T, K)`.
        """
        batch, time = word_ids.shape
        pad_mask = torch.arange(time, device=word_ids.device).unsqueeze(0) >= lengths.unsqueeze(1)  # (B, T)
        if self.training and self.config.word_dropout > 0:
            dropped = torch.rand(word_ids.shape, device=word_ids.device) < self.config.word_dropout
            word_ids = word_ids.masked_fill(dropped & ~pad_mask, UNK_ID)
        # Every position's characters at once, padding words included (their features are zeroed):
        # one call, and no data-dependent shapes in the graph. Batches of similar lengths keep the
        # padding small.
        char_features = self.chars(char_ids.reshape(batch * time, -1)).view(batch, time, -1)  # (B, T, F)
        parts = [self.embedding(word_ids), char_features.masked_fill(pad_mask.unsqueeze(-1), 0.0)]
        if self.feature_embedding is not None:
            if features is None:
                raise NlpLstmError("this tagger reads a per-token feature column (such as a predicate indicator); "
                                   "give it with the tokens")
            parts.append(self.feature_embedding(features))
        inputs = self.dropout(torch.cat(parts, dim=-1))  # (B, T, E + F + D_f)
        outputs, _ = self.encoder(inputs, lengths, need_cell_state=False)  # (B, T, 2H)
        return self.emissions(self.dropout(outputs))  # (B, T, K)

    def loss(self, batch: TagBatch, emissions: torch.Tensor | None = None) -> torch.Tensor:
        """Summed per-sentence negative log-likelihood over the batch, divided by the sentence count
        (the same scale for both decoders: CRF path NLL, or the tokens' cross-entropy summed)."""
        if batch.tag_ids is None:
            raise NlpLstmError("the batch has no gold tags to compute a loss from")
        emissions = self(batch) if emissions is None else emissions
        sentences = batch.word_ids.shape[0]
        if self.crf is not None:
            return self.crf.nll(emissions, batch.tag_ids, batch.pad_mask).sum() / sentences
        token_loss = F.cross_entropy(emissions.transpose(1, 2), batch.tag_ids, reduction="none")  # (B, T)
        return token_loss.masked_fill(batch.pad_mask, 0.0).sum() / sentences

    @torch.no_grad()
    def decode(self, batch: TagBatch, emissions: torch.Tensor | None = None) -> list[list[int]]:
        """The best tag ids of each sentence (Viterbi under the CRF, else per-token argmax)."""
        emissions = self(batch) if emissions is None else emissions
        if self.crf is not None:
            paths, _ = self.crf.viterbi(emissions, batch.pad_mask)
        else:
            paths = emissions.argmax(dim=-1)
        return [row[:length] for row, length in zip(paths.tolist(), batch.lengths.tolist())]

    @torch.no_grad()
    def marginals(self, batch: TagBatch, emissions: torch.Tensor | None = None) -> torch.Tensor:
        """`p(y_t = k | x)` per token, `(B, T, K)`: CRF marginals (forward-backward), or the softmax."""
        emissions = self(batch) if emissions is None else emissions
        if self.crf is not None:
            return self.crf.marginals(emissions, batch.pad_mask)
        return emissions.softmax(dim=-1).masked_fill(batch.pad_mask.unsqueeze(-1), 0.0)

    def load_word_vectors(self, weight: torch.Tensor, *, freeze: bool = False) -> None:
        """Start the word embedding from a `(vocab_size, embedding_dim)` table (pretrained vectors)."""
        if tuple(weight.shape) != tuple(self.embedding.weight.shape):
            raise NlpLstmError(f"word vectors of shape {tuple(weight.shape)} do not fit the embedding "
                               f"{tuple(self.embedding.weight.shape)}; set embedding_dim to the vectors' dimension")
        with torch.no_grad():
            self.embedding.weight.copy_(weight)
            self.embedding.weight[PAD_ID].zero_()
        self.embedding.weight.requires_grad_(not freeze)
