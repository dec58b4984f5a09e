"""Recurrent language models (GRU / LSTM / Elman RNN) as a real `transformers` model family:
a config, a base model and task heads that `save_pretrained`/`from_pretrained` through
safetensors, train with `Trainer` and load through the Auto classes.

The base model is embedding -> dropout -> stacked nn.GRU/LSTM/RNN over right-padded batches.
It is causal, so padding after a sequence's last token cannot change that token's state, and
"last" pooling reads the state at the last real token without packing the batch.

`bidirectional` is ELMo's, not nn.GRU's: a forward and a separate backward language model over
shared embeddings, each trained to predict the next token in its own direction (a backward
state never sees the token it predicts), their states concatenated for the task heads, so token
classification sees both sides of a word.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutput,
    CausalLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from .tagging import TAGGING_DEFAULTS, TaggingHead, init_module

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}
POOLINGS = ("last", "mean", "max", "concat")


class RecurrentConfig(PretrainedConfig):
    model_type = "scratchlm-recurrent"

    def __init__(self, vocab_size: int = 8000, cell: str = "gru", embedding_size: int = 128,
                 hidden_size: int = 256, num_layers: int = 1, dropout: float = 0.1,
                 bidirectional: bool = False, pooling: str = "last", tie_word_embeddings: bool = True,
                 pad_token_id: int = 0, initializer_range: float = 0.02, embedding_dropout: float = 0.0,
                 weight_drop: float = 0.0, variational: bool = False, activation_reg: float = 0.0,
                 temporal_activation_reg: float = 0.0, reader_hidden: int = 0, **kwargs):
        for key, value in TAGGING_DEFAULTS.items():  # the token-classification head's options
            setattr(self, key, kwargs.pop(key, value))
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.vocab_size = vocab_size
        self.cell = cell
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.initializer_range = initializer_range
        self.embedding_dropout = embedding_dropout
        self.weight_drop = weight_drop
        self.variational = variational
        self.activation_reg = activation_reg  # AWD-LSTM's AR and TAR: LM training losses only
        self.temporal_activation_reg = temporal_activation_reg
        self.reader_hidden = reader_hidden  # sequence classification's task reader (0: none)
        super().__init__(pad_token_id=pad_token_id, tie_word_embeddings=tie_word_embeddings, **kwargs)

    @property
    def output_size(self) -> int:
        """Width of the base model's states: both directions side by side when bidirectional."""
        return self.hidden_size * (2 if self.bidirectional else 1)


class RecurrentPreTrainedModel(PreTrainedModel):
    config_class = RecurrentConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    # our losses are means over the batch; without this, Trainer would pass num_items_in_batch and,
    # under DDP, multiply the (already averaged) loss by the number of processes
    accepts_loss_kwargs = False

    def _init_weights(self, module):
        std = self.config.initializer_range
        if init_module(module):
            return
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, tuple(CELLS.values())):
            module.reset_parameters()  # PyTorch's uniform(-1/sqrt(H), 1/sqrt(H)), the usual RNN init


def reverse_padded(x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Reverse each right-padded sequence within its own length (padding stays at the end).
    Applying it twice gives back `x`."""
    B, T = x.shape[:2]
    positions = torch.arange(T, device=x.device).expand(B, T)
    if attention_mask is None:
        index = T - 1 - positions
    else:
        lengths = attention_mask.sum(1, keepdim=True)
        index = torch.where(positions < lengths, lengths - 1 - positions, positions)
    if x.dim() == 3:
        index = index.unsqueeze(-1).expand_as(x)
    return x.gather(1, index)


class RecurrentModel(RecurrentPreTrainedModel):
    """Embedding -> dropout -> recurrent layers -> dropout, with AWD-LSTM's regularisers as options
    (Merity et al. 2018): `embedding_dropout` drops whole word types from the embedding matrix,
    `variational` dropout keeps one mask per sequence across time steps, and `weight_drop` drops
    hidden-to-hidden weights (DropConnect) afresh at each forward pass. (AR and TAR, penalties on
    the states, belong to the LM's loss: RecurrentForCausalLM.)"""

    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = self._rnn(config)
        self.rnn_backward = self._rnn(config) if config.bidirectional else None
        self.post_init()

    @staticmethod
    def _rnn(config: RecurrentConfig) -> nn.Module:
        return CELLS[config.cell](config.embedding_size, config.hidden_size, num_layers=config.num_layers,
                                  batch_first=True, dropout=config.dropout if config.num_layers > 1 else 0.0)

    def get_input_embeddings(self):
        return self.embeddings

    def set_input_embeddings(self, value):
        self.embeddings = value

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False, **kwargs) -> BaseModelOutput:
        """States (B, T, output_size); bidirectional: [forward; backward] per position. With
        `output_hidden_states`, also (embeddings, states), as transformers' encoders give them."""
        embedded, raw = self.states(input_ids, attention_mask)
        hidden = self._drop(raw)
        layers = (embedded, hidden) if output_hidden_states else None
        return BaseModelOutput(last_hidden_state=hidden, hidden_states=layers)

    def states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """(dropped embeddings, the recurrent states before their output dropout)."""
        embedded = self._drop(self._embed(input_ids))
        hidden = self._run(self.rnn, embedded)
        if self.rnn_backward is not None:
            backward = self._run(self.rnn_backward, reverse_padded(embedded, attention_mask))
            hidden = torch.cat([hidden, reverse_padded(backward, attention_mask)], dim=-1)
        return embedded, hidden

    def _embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        p = self.config.embedding_dropout
        if not self.training or p == 0:
            return self.embeddings(input_ids)
        weight = self.embeddings.weight
        keep = weight.new_empty(weight.size(0), 1).bernoulli_(1 - p) / (1 - p)
        return nn.functional.embedding(input_ids, weight * keep, self.embeddings.padding_idx)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        if not self.config.variational or not self.training or self.config.dropout == 0:
            return self.dropout(x)
        p = self.config.dropout
        return x * x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1 - p) / (1 - p)

    def _run(self, rnn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        p = self.config.weight_drop
        if not self.training or p == 0:
            return rnn(x)[0]
        dropped = {name: nn.functional.dropout(w, p) for name, w in rnn.named_parameters()
                   if name.startswith("weight_hh")}
        return torch.func.functional_call(rnn, dropped, (x,))[0]


class RecurrentForCausalLM(RecurrentPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embeddings.weight"}

    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        self.model = RecurrentModel(config)
        # project to the embedding width so the output layer can share the embedding matrix
        self.proj = (nn.Linear(config.hidden_size, config.embedding_size)
                     if config.hidden_size != config.embedding_size else nn.Identity())
        self.lm_head = nn.Linear(config.embedding_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs) -> CausalLMOutput:
        """Logits are the forward LM's (what `generate()` samples from); with a backward LM the
        loss is the mean of both directions' next-token losses. In training, AR and TAR add
        their penalties to it (the loss reported while training includes them)."""
        raw = self.model.states(input_ids, attention_mask)[1]
        hidden = self.model._drop(raw)
        forward = hidden[..., :self.config.hidden_size]
        logits = self.lm_head(self.proj(forward))
        loss = None
        if labels is not None:
            loss = _next_token_loss(logits, labels)
            if self.config.bidirectional:
                backward = reverse_padded(hidden[..., self.config.hidden_size:], attention_mask)
                reversed_logits = self.lm_head(self.proj(backward))
                loss = (loss + _next_token_loss(reversed_logits, reverse_padded(labels, attention_mask))) / 2
            if self.training:
                loss = loss + activation_penalty(raw, hidden, attention_mask, self.config.activation_reg,
                                                 self.config.temporal_activation_reg)
        return CausalLMOutput(loss=loss, logits=logits)

    def logits_at(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, rows: torch.Tensor,
                  cols: torch.Tensor) -> torch.Tensor:
        """The forward LM's logits at positions (rows[i], cols[i]) alone: what scoring a few
        words after long texts needs (prompting.py), without the output layer everywhere else."""
        hidden = self.model(input_ids, attention_mask).last_hidden_state[..., :self.config.hidden_size]
        return self.lm_head(self.proj(hidden[rows.to(hidden.device), cols.to(hidden.device)]))

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # a recurrent state is not a key/value cache

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        # no state cache: each step re-reads the prefix (short samples; keeps the model simple)
        return {"input_ids": input_ids, "attention_mask": attention_mask}


class _CrossEntropy(torch.autograd.Function):
    """Mean cross-entropy over the labels that are not -100, in fp32, with the gradient
    softmax - one_hot written over the saved log-probabilities. F.cross_entropy's backward
    zero-fills a (N, V) gradient for nll_loss, then runs log_softmax's backward over it: about
    twice the time on CPU (docs/performance.md, "What each optimisation bought")."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logp = logits.float().log_softmax(-1)
        valid = labels != -100
        safe = labels.masked_fill(~valid, 0)
        n = valid.sum().clamp(min=1)
        ctx.save_for_backward(logp, safe, valid, n)
        ctx.dtype, ctx.spent = logits.dtype, False
        return -(logp.gather(1, safe[:, None]).squeeze(1) * valid).sum() / n

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        if ctx.spent:  # the saved log-probabilities became the gradient in place
            raise RuntimeError("the LM loss supports one backward pass (no retain_graph)")
        ctx.spent = True
        logp, safe, valid, n = ctx.saved_tensors
        grad = logp.exp_()
        grad.scatter_add_(1, safe[:, None], torch.full_like(safe[:, None], -1, dtype=grad.dtype))
        grad.mul_((valid * (grad_loss / n)).unsqueeze(1))
        return grad.to(ctx.dtype), None


def activation_penalty(raw: torch.Tensor, dropped: torch.Tensor, attention_mask: torch.Tensor | None,
                       ar: float, tar: float) -> torch.Tensor | float:
    """AWD-LSTM's activation regularisation (Merity et al. 2017): `ar` times the mean square of
    the dropped output states (keeps them small, away from a saturated GRU's +-1), plus `tar`
    times the mean square of the change between neighbouring raw states (keeps them slow).
    Means over real positions (and pairs of them), as AWD-LSTM's `.pow(2).mean()`."""
    penalty = 0.0
    if not (ar or tar):  # both off (the schema's default): nothing to build
        return penalty
    mask = (torch.ones(raw.shape[:2], device=raw.device) if attention_mask is None
            else attention_mask.to(raw.dtype))
    if ar:
        penalty = penalty + ar * (dropped.pow(2).mean(-1) * mask).sum() / mask.sum().clamp(min=1)
    if tar:
        pairs = mask[:, 1:] * mask[:, :-1]
        change = (raw[:, 1:] - raw[:, :-1]).pow(2).mean(-1)
        penalty = penalty + tar * (change * pairs).sum() / pairs.sum().clamp(min=1)
    return penalty


def _next_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Position t predicts token t+1: the labels shift left (the last position predicts nothing).
    Slicing the (B, T, V) logits instead would copy them forward and zero-fill a copy backward:
    11% of a pretraining step on CPU (measured: batch 32 x 128, vocabulary 4000)."""
    shifted = nn.functional.pad(labels[:, 1:], (0, 1), value=-100)
    return _CrossEntropy.apply(logits.reshape(-1, logits.size(-1)), shifted.reshape(-1))


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, how: str,
         backward_from: int | None = None) -> torch.Tensor:
    """Sequence vector from (B, T, H) states; padding is on the right. `concat` is ULMFiT's
    [last; max; mean] (3H): max and mean give every position a direct gradient path, which a
    pretrained recurrent state, tuned for next-token prediction, needs."""
    if how == "concat":
        return torch.cat([pool(hidden, attention_mask, h, backward_from) for h in ("last", "max", "mean")], dim=-1)
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if how == "last":
        last = attention_mask.sum(1).clamp(min=1) - 1
        rows = torch.arange(hidden.size(0), device=hidden.device)
        if backward_from is None:
            return hidden[rows, last]
        # a backward LM has read the whole text when it reaches position 0
        return torch.cat([hidden[rows, last, :backward_from], hidden[:, 0, backward_from:]], dim=-1)
    if how == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(1).values


class RecurrentForSequenceClassification(RecurrentPreTrainedModel):
    """A classifier over the pooled states, or, with `reader_hidden`, over a task reader: a fresh
    bidirectional RNN (the model's cell) over [embeddings; states] of every position, as ELMo and
    TagLM use a language model's layers as features of a task model of their own. On the demo's
    sentiment task it brought two seeds of three to scratch's level and not the third, at 2.7
    times the fine-tuning time, so the demo leaves it off (docs/results.md, "A task reader")."""

    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RecurrentModel(config)
        width = config.output_size
        self.reader = None
        if config.reader_hidden:
            self.reader = CELLS[config.cell](config.embedding_size + config.output_size, config.reader_hidden,
                                             batch_first=True, bidirectional=True)
            self.reader_dropout = nn.Dropout(config.dropout)
            width = 2 * config.reader_hidden
        self.classifier = nn.Linear(width * (3 if config.pooling == "concat" else 1), config.num_labels)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs) -> SequenceClassifierOutput:
        if self.reader is None:
            hidden = self.model(input_ids, attention_mask).last_hidden_state
            backward_from = self.config.hidden_size if self.config.bidirectional else None
        else:
            hidden, backward_from = self._read(input_ids, attention_mask), self.config.reader_hidden
        logits = self.classifier(pool(hidden, attention_mask, self.config.pooling, backward_from))
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def _read(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The reader's states (B, T, 2 * reader_hidden); packed, so that its backward direction
        starts at each text's last token, not in the padding."""
        layers = self.model(input_ids, attention_mask, output_hidden_states=True).hidden_states
        features = torch.cat(layers, dim=-1)
        lengths = (attention_mask.sum(1) if attention_mask is not None
                   else torch.full((features.size(0),), features.size(1)))
        packed = nn.utils.rnn.pack_padded_sequence(features, lengths.clamp(min=1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.reader(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=features.size(1))
        return self.reader_dropout(out)


class RecurrentForTokenClassification(RecurrentPreTrainedModel):
    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RecurrentModel(config)
        self.head = TaggingHead(config, config.output_size)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs) -> TokenClassifierOutput:
        states = self.model(input_ids, attention_mask).last_hidden_state
        loss, logits = self.head(states, input_ids, attention_mask, labels)
        return TokenClassifierOutput(loss=loss, logits=logits)

    def decode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               starts: torch.Tensor | None = None) -> torch.Tensor:
        """Each position's tag (Viterbi's under a CRF); -100 outside words (see TaggingHead)."""
        return self.head.decode(self.model(input_ids, attention_mask).last_hidden_state, input_ids, attention_mask,
                                starts)
