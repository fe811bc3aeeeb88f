"""Abstractive summarizer: BiLSTM encoder, attention LSTM decoder, pointer-generator copy, coverage.

See et al. 2017, "Get To The Point: Summarization with Pointer-Generator Networks", with two pieces
from Luong et al. 2015: input feeding (sec. 3.3) and the attentional vector h~_t = tanh(W_c[c_t; s_t])
(eq. 5), which feeds both the output layer and the next step's input.

One decoder step, for a batch of B rows (see `Summarizer.step`):
    x_t   = [embed(y_{t-1}); h~_{t-1}]                     (B, E + H)   input feeding
    s_t   = LSTMCell stack(x_t, state)                     (B, H)
    a_t   = attention(s_t, encoder outputs, coverage)      (B, S)       masked at padding
    h*_t  = sum_i a_ti h_i                                 (B, 2H)      context
    h~_t  = tanh(W_c [h*_t; s_t])                          (B, H)
    P     = p_gen P_vocab(h~_t) + (1 - p_gen) copy(a_t)    (B, V + max_oovs)
    c_t+1 = c_t + a_t                                      (B, S)       coverage (See eq. 10)

Decoding lives outside the model (`nlp_lstm.decoding`): it calls `encode`, `init_state`, `step`.
"""

from dataclasses import dataclass

import torch
from torch import nn

from nlp_lstm.data.specials import PAD_ID, UNK_ID
from nlp_lstm.errors import NlpLstmError
from nlp_lstm.nn.attention import ATTENTION
from nlp_lstm.nn.copy import PointerGenerator, extended_log_probs
from nlp_lstm.nn.lstm import LSTM, PEEPHOLES


@dataclass
class SummarizerConfig:
    """Everything needed to rebuild a `Summarizer` (the `[model]` table of a summarization pipeline,
    and the `model` entry of its `config.json`). `vocab_size` comes from the tokenizer."""

    vocab_size: int | None = None
    embedding_dim: int = 128
    hidden_size: int = 256
    encoder_layers: int = 1
    decoder_layers: int = 1
    dropout: float = 0.1
    attention: str = "additive"  # "additive" (Bahdanau) | "general" (Luong)
    copy: bool = True
    coverage: bool = False
    peephole: str = "none"  # encoder LSTM cell: "none" | "diagonal" | "full"
    max_source_length: int = 400  # source tokens kept (longer sources are truncated, with a warning)
    max_target_length: int = 30  # summary tokens trained on
    # See et al. (2017) sec. 4: the coverage loss (weight lambda, eq. 13) is trained only for the last
    # part of training, from this epoch (1-based; 0 = never). Needs coverage = true.
    coverage_from_epoch: int = 0
    coverage_weight: float = 1.0

    def __post_init__(self):
        names = ["embedding_dim", "hidden_size", "encoder_layers", "decoder_layers", "max_source_length",
                 "max_target_length"] + (["vocab_size"] if self.vocab_size is not None else [])
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NlpLstmError(f"summarizer {name}={value!r} is invalid: use a positive integer")
        if self.coverage_from_epoch < 0 or self.coverage_weight < 0:
            raise NlpLstmError("summarizer coverage_from_epoch and coverage_weight must be >= 0")
        if self.coverage_from_epoch and not self.coverage:
            raise NlpLstmError("coverage_from_epoch is set but the model has coverage = false; turn coverage on")
        if self.vocab_size is not None and self.vocab_size <= 4:
            raise NlpLstmError(
                f"summarizer vocab_size={self.vocab_size} leaves no room beyond the 4 special "
                "tokens: fit a larger vocabulary"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise NlpLstmError(f"summarizer dropout={self.dropout!r} is invalid: use 0 <= dropout < 1")
        if self.attention not in ATTENTION:
            raise NlpLstmError(
                f"summarizer attention={self.attention!r} is unknown: use one of {sorted(ATTENTION)}"
            )
        if self.peephole not in PEEPHOLES:
            raise NlpLstmError(
                f"summarizer peephole={self.peephole!r} is unknown: use one of {list(PEEPHOLES)}"
            )
        for name in ("copy", "coverage"):
            if not isinstance(getattr(self, name), bool):
                raise NlpLstmError(f"summarizer {name}={getattr(self, name)!r} must be true or false")


@dataclass
class EncoderOutput:
    """What every decoder step reads; one row per example (beams share it, see `Summarizer.step`).

    Attributes:
        outputs: `(batch, src_len, 2*hidden)` BiLSTM outputs h_i, zero at padding.
        keys: `(batch, src_len, key_size)` attention keys, projected once (`Attention.project_keys`).
        pad_mask: `(batch, src_len)` bool, True at padding.
        final_h: `(encoder_layers*2, batch, hidden)` final hidden states, ordered like torch.nn.LSTM.
        final_c: `(encoder_layers*2, batch, hidden)` final cell states.
    """

    outputs: torch.Tensor
    keys: torch.Tensor
    pad_mask: torch.Tensor
    final_h: torch.Tensor
    final_c: torch.Tensor

    def index_select(self, rows: torch.Tensor) -> "EncoderOutput":
        """Keep/reorder examples, e.g. the unfinished ones during decoding."""
        return EncoderOutput(
            outputs=self.outputs.index_select(0, rows),
            keys=self.keys.index_select(0, rows),
            pad_mask=self.pad_mask.index_select(0, rows),
            final_h=self.final_h.index_select(1, rows),
            final_c=self.final_c.index_select(1, rows),
        )


@dataclass
class DecoderState:
    """The decoder's recurrent state between steps.

    Attributes:
        h: `(decoder_layers, batch, hidden)` LSTM hidden states, top layer last (s_t = h[-1]).
        c: `(decoder_layers, batch, hidden)` LSTM cell states.
        input_feed: `(batch, hidden)` previous attentional vector h~_{t-1} (zeros at the start).
        coverage: `(batch, src_len)` sum of the attention of all earlier steps (zeros at the start).
    """

    h: torch.Tensor
    c: torch.Tensor
    input_feed: torch.Tensor
    coverage: torch.Tensor

    def index_select(self, rows: torch.Tensor) -> "DecoderState":
        """Keep/repeat/reorder rows (beam search's reordering of hypotheses)."""
        return DecoderState(
            h=self.h.index_select(1, rows),
            c=self.c.index_select(1, rows),
            input_feed=self.input_feed.index_select(0, rows),
            coverage=self.coverage.index_select(0, rows),
        )


class Summarizer(nn.Module):
    """Pointer-generator summarizer; see the module docstring for one decoder step.

    `coverage_weight` (lambda in See et al. eq. 13) weights the coverage loss in `forward`. It starts
    at 0; the trainer raises it for the last part of training, as See et al. do (sec. 4).
    """

    def __init__(self, config: SummarizerConfig):
        super().__init__()
        self.config = config
        self.coverage_weight = 0.0
        hidden = config.hidden_size
        # One vocabulary for source and target, so one embedding (See et al. sec. 3).
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(config.dropout)
        self.encoder = LSTM(
            config.embedding_dim,
            hidden,
            num_layers=config.encoder_layers,
            bidirectional=True,
            dropout=config.dropout,
            peephole=config.peephole,
        )
        # Bridge: the top encoder layer's final forward and backward states -> decoder start state
        # (See et al.'s reduce_states; one projection shared out over the decoder layers).
        self.bridge_h = nn.Linear(2 * hidden, config.decoder_layers * hidden)
        self.bridge_c = nn.Linear(2 * hidden, config.decoder_layers * hidden)
        decoder_input_size = config.embedding_dim + hidden  # input feeding (Luong sec. 3.3)
        self.decoder_cells = nn.ModuleList(
            nn.LSTMCell(decoder_input_size if layer == 0 else hidden, hidden)
            for layer in range(config.decoder_layers)
        )
        self.attention = ATTENTION[config.attention](hidden, 2 * hidden, coverage=config.coverage)
        self.attentional = nn.Linear(2 * hidden + hidden, hidden, bias=False)  # W_c (Luong eq. 5)
        self.generator = nn.Linear(hidden, config.vocab_size)
        self.pointer = (
            PointerGenerator(context_size=2 * hidden, state_size=hidden, input_size=decoder_input_size)
            if config.copy
            else None
        )

    def encode(
        self, src_ids: torch.Tensor, src_lengths: torch.Tensor, src_pad_mask: torch.Tensor
    ) -> EncoderOutput:
        """Run the BiLSTM encoder.

        Args:
            src_ids: `(batch, src_len)` in-vocabulary ids (UNK for OOV), padded with PAD.
            src_lengths: `(batch,)` real lengths (each >= 1).
            src_pad_mask: `(batch, src_len)` bool, True at padding.
        """
        embedded = self.dropout(self.embedding(src_ids))  # (B, S, E)
        outputs, (final_h, final_c) = self.encoder(embedded, lengths=src_lengths)  # (B, S, 2H)
        return EncoderOutput(
            outputs=outputs,
            keys=self.attention.project_keys(outputs),
            pad_mask=src_pad_mask,
            final_h=final_h,
            final_c=final_c,
        )

    def init_state(self, encoder_output: EncoderOutput) -> DecoderState:
        """Decoder start state from the encoder's final states (the bridge)."""
        layers, hidden = self.config.decoder_layers, self.config.hidden_size
        batch_size, src_len = encoder_output.pad_mask.shape

        def top_layer(states: torch.Tensor) -> torch.Tensor:  # (2L, B, H) -> (B, 2H) fwd;bwd
            return torch.cat([states[-2], states[-1]], dim=-1)

        def per_layer(flat: torch.Tensor) -> torch.Tensor:  # (B, L*H) -> (L, B, H)
            return flat.view(batch_size, layers, hidden).transpose(0, 1).contiguous()

        h = per_layer(torch.tanh(self.bridge_h(top_layer(encoder_output.final_h))))
        c = per_layer(self.bridge_c(top_layer(encoder_output.final_c)))
        return DecoderState(
            h=h,
            c=c,
            input_feed=h.new_zeros(batch_size, hidden),
            coverage=h.new_zeros(batch_size, src_len),
        )

    def step(
        self,
        prev_ids: torch.Tensor,
        state: DecoderState,
        encoder_output: EncoderOutput,
        src_ext_ids: torch.Tensor,
        max_oovs: int,
        *,
        beam_size: int = 1,
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor, torch.Tensor]:
        """One decoder step.

        Rows are hypotheses, `examples x beam_size`, example-major (row `e * beam_size + k` is beam k
        of example e); the beams of an example read its one row of `encoder_output` and
        `src_ext_ids`, which are never copied per beam. With `beam_size=1` rows are examples.

        Args:
            prev_ids: `(rows,)` previous output ids; extended ids (>= vocab_size) are read as UNK.
            state: the `DecoderState` after the previous step (or `init_state`), `rows` rows.
            encoder_output: from `encode`, one row per example.
            src_ext_ids: `(examples, src_len)` source ids in the extended vocabulary.
            max_oovs: extended slots in the output (the batch's largest OOV count).
            beam_size: hypotheses per example.
        Returns:
            log_probs `(rows, vocab_size + max_oovs)` (convention in `nlp_lstm.nn.copy`),
            the new state, attention `(rows, src_len)`, and p_gen `(rows,)` (ones without copy).
        """
        vocab_size = self.config.vocab_size
        prev_ids = prev_ids.masked_fill(prev_ids >= vocab_size, UNK_ID)
        embedded = self.dropout(self.embedding(prev_ids))  # (R, E)
        inputs = torch.cat([embedded, state.input_feed], dim=-1)  # (R, E + H)

        layer_input, new_h, new_c = inputs, [], []
        for layer, cell in enumerate(self.decoder_cells):
            h, c = cell(layer_input, (state.h[layer], state.c[layer]))
            new_h.append(h)
            new_c.append(c)
            layer_input = self.dropout(h) if layer + 1 < len(self.decoder_cells) else h
        query = new_h[-1]  # s_t, (R, H)

        context, attention = self.attention(
            query,
            encoder_output.keys,
            encoder_output.outputs,
            encoder_output.pad_mask,
            coverage=state.coverage,
            beam_size=beam_size,
        )  # (R, 2H), (R, S)
        attentional = torch.tanh(self.attentional(torch.cat([context, query], dim=-1)))  # (R, H)
        vocab_logits = self.generator(self.dropout(attentional))  # (R, V)
        p_gen = self.pointer(context, query, inputs) if self.pointer is not None else None
        log_probs = extended_log_probs(
            vocab_logits,
            attention=attention,
            src_ext_ids=src_ext_ids,
            max_oovs=max_oovs,
            p_gen=p_gen,
        )
        new_state = DecoderState(
            h=torch.stack(new_h),
            c=torch.stack(new_c),
            input_feed=attentional,
            coverage=state.coverage + attention,
        )
        if p_gen is None:
            p_gen = query.new_ones(query.shape[0])
        return log_probs, new_state, attention, p_gen

    def forward(self, batch: dict) -> dict:
        """Teacher-forced loss over a batch (See et al. eqs. 6-7, 12-13).

        Args:
            batch: `src_ids`, `src_ext_ids`, `src_lengths`, `src_pad_mask`, `max_oovs`,
                `dec_input_ids` `(batch, tgt_len)` ([BOS] + target, in-vocab ids),
                `target_ids` `(batch, tgt_len)` (target in extended ids + [EOS]), `tgt_pad_mask`.
        Returns:
            `loss` = nll + coverage_weight * coverage_loss (a scalar tensor); `nll`, the mean negative
            log-likelihood per real target token; `coverage_loss`, the mean per real target token of
            sum_i min(a_i^t, c_i^t) (See eq. 12); `num_tokens`, the count of real target tokens.
        """
        max_oovs = int(batch["max_oovs"])
        target_ids = batch["target_ids"]
        if self.pointer is None:
            # Without copying an OOV target can only be predicted as UNK.
            target_ids = target_ids.masked_fill(target_ids >= self.config.vocab_size, UNK_ID)
        real = ~batch["tgt_pad_mask"]  # (B, T)

        encoder_output = self.encode(
            src_ids=batch["src_ids"], src_lengths=batch["src_lengths"], src_pad_mask=batch["src_pad_mask"]
        )
        state = self.init_state(encoder_output)
        step_nll, step_coverage = [], []
        for t in range(batch["dec_input_ids"].shape[1]):
            coverage = state.coverage  # c^t: attention of steps before t
            log_probs, state, attention, _ = self.step(
                prev_ids=batch["dec_input_ids"][:, t],
                state=state,
                encoder_output=encoder_output,
                src_ext_ids=batch["src_ext_ids"],
                max_oovs=max_oovs,
            )
            step_nll.append(-log_probs.gather(1, target_ids[:, t : t + 1]).squeeze(1))  # (B,)
            step_coverage.append(torch.minimum(attention, coverage).sum(dim=-1))  # (B,)

        num_tokens = int(real.sum().item())
        denominator = max(num_tokens, 1)
        # where, not multiply: a padded step must not turn an inf into a NaN.
        nll = torch.where(real, torch.stack(step_nll, dim=1), 0.0).sum() / denominator
        coverage_loss = torch.where(real, torch.stack(step_coverage, dim=1), 0.0).sum() / denominator
        loss = nll + self.coverage_weight * coverage_loss if self.coverage_weight else nll
        return {"loss": loss, "nll": nll, "coverage_loss": coverage_loss, "num_tokens": num_tokens}
