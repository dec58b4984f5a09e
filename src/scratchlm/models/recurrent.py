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

import math

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
        # draws of a sampled softmax in training (0: the full softmax): a choice of the pretraining
        # stage (models.pretraining_model), not of the model, so it is not saved with it and
        # adaptation, fine-tuning and evaluation score the full softmax
        self.sampled_softmax = 0
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, skip_logits: bool | None = None, **kwargs) -> CausalLMOutput:
        """Logits are the forward LM's (what `generate()` samples from); with a backward LM the
        loss is the mean of both directions' next-token losses. In training, AR and TAR add
        their penalties to it (the loss reported while training includes them), and with
        `sampled_softmax` the loss is the sampled estimate (`_sampled_next_token_loss`; evaluation
        keeps the exact one). The loss never needs the logits (`_next_token_loss`); training with
        labels skips them unless asked (`skip_logits`, the name transformers gives this)."""
        raw = self.model.states(input_ids, attention_mask)[1]
        hidden = self.model._drop(raw)
        features = self.proj(hidden[..., :self.config.hidden_size])
        if skip_logits is None:
            skip_logits = self.training and labels is not None
        logits = None if skip_logits else self.lm_head(features)
        loss = None
        if labels is not None:
            directions = [(features, labels)]
            if self.config.bidirectional:
                backward = self.proj(reverse_padded(hidden[..., self.config.hidden_size:], attention_mask))
                directions.append((backward, reverse_padded(labels, attention_mask)))
            if self.training and self.sampled_softmax:
                loss = _sampled_next_token_loss([f for f, _ in directions], self.lm_head.weight,
                                                [y for _, y in directions], self.sampled_softmax)
            else:  # each direction's mean loss, averaged
                loss = sum(_next_token_loss(f, self.lm_head.weight, y) for f, y in directions) / len(directions)
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


# Rows of the output layer's logits computed at a time: 256 x 8,000 fp32 is 8 MB, near the cache,
# where the whole (B*T, V) matrix is hundreds of MB written and read several times (measured:
# docs/performance.md, "What each optimisation bought").
LOSS_CHUNK_ELEMENTS = 2 ** 21


def _linear_cross_entropy(features: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, grads: bool):
    """Mean cross-entropy of `features @ weight.T` over the labels that are not -100, chunk by
    chunk of rows: each chunk's logits in the features' precision (bf16 under autocast), their
    softmax in fp32, and with `grads` the gradients of both inputs at once (softmax - one-hot,
    times the chunk's rows). Returns (loss, grad of features, grad of weight)."""
    with torch.autocast(features.device.type, enabled=False):
        w, exact = weight.to(features.dtype), torch.promote_types(features.dtype, torch.float32)
        valid = labels != -100
        safe = labels.masked_fill(~valid, 0)
        n = valid.sum().clamp(min=1)
        scale = valid.to(exact) / n
        grad_f = torch.empty_like(features) if grads else None
        grad_w = torch.zeros_like(weight, dtype=exact) if grads else None
        total = torch.zeros((), dtype=exact, device=features.device)
        chunk = max(1, LOSS_CHUNK_ELEMENTS // weight.size(0))
        for start in range(0, features.size(0), chunk):
            rows, y = features[start:start + chunk], safe[start:start + chunk, None]
            logits = torch.mm(rows, w.t()).to(exact)
            lse = logits.logsumexp(-1, keepdim=True)
            total += ((lse - logits.gather(1, y)).squeeze(1) * valid[start:start + chunk]).sum()
            if grads:
                grad = logits.sub_(lse).exp_().scatter_add_(1, y, torch.full_like(y, -1, dtype=logits.dtype))
                grad = grad.mul_(scale[start:start + chunk, None]).to(features.dtype)
                torch.mm(grad, w, out=grad_f[start:start + chunk])
                grad_w += torch.mm(grad.t(), rows).to(exact)
    return total / n, grad_f, None if grad_w is None else grad_w.to(weight.dtype)


class _LinearCrossEntropy(torch.autograd.Function):
    """The loss above for autograd, without the (N, V) logits: the gradients are computed in the
    forward, as fused linear cross-entropy kernels do on GPUs (Liger, Apple's cut cross-entropy).
    The output layer's matrix multiplies are the same as unfused; what goes is the traffic of the
    full logits (a cast to fp32, log-softmax, its copy for backward)."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss, grad_f, grad_w = _linear_cross_entropy(features, weight, labels, grads=True)
        ctx.save_for_backward(grad_f, grad_w)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grad_f, grad_w = ctx.saved_tensors
        return grad_f * grad_loss.to(grad_f.dtype), grad_w * grad_loss.to(grad_w.dtype), None


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


def _next_token_loss(features: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Position t predicts token t+1 through the output layer `weight`: the labels shift left
    (the last position predicts nothing), so no slice of the features is copied."""
    shifted = nn.functional.pad(labels[:, 1:], (0, 1), value=-100).reshape(-1)
    flat = features.reshape(-1, features.size(-1))
    if torch.is_grad_enabled() and (flat.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(flat, weight, shifted)
    return _linear_cross_entropy(flat, weight, shifted, grads=False)[0]  # evaluation: the loss alone


# A sampled softmax's drawn classes are padded to a multiple of this many columns: a step's
# matrices then come in a few sizes, not hundreds, and the allocator keeps less (peak RSS over
# 120 steps 1,180 -> 890 MB, docs/performance.md).
DRAWN_COLUMNS = 64


def draw_chances(targets: torch.Tensor, vocabulary: int, num_sampled: int) -> torch.Tensor:
    """Each class's chance to be among a sampled softmax's draws from these targets (below):
    1 - (1 - its share of the targets)^(draws from them) * (1 - 1/V)^(uniform draws)."""
    share = torch.bincount(targets, minlength=vocabulary).double() / targets.numel()
    never = (num_sampled - num_sampled // 2) * torch.log1p(-share) + num_sampled // 2 * math.log1p(-1 / vocabulary)
    return -torch.expm1(never)


def _sampled_next_token_loss(features: list[torch.Tensor], weight: torch.Tensor, labels: list[torch.Tensor],
                             num_sampled: int) -> torch.Tensor:
    """Sampled softmax (Jean et al. 2015), the next-token loss of every direction at once: each
    position's logit for its own next token against those of one set of classes shared by the
    batch, drawn `num_sampled` times, half from the batch's own next tokens (the corpus' unigram
    distribution: the classes that matter most) and half uniformly from the vocabulary (so every
    row of the output layer is pushed down now and then); a class drawn twice counts once. Each
    logit is less the log of its class's chance to be among the draws, and a drawn class that is
    a position's own target is left out of that position's row. Only the drawn classes' rows of
    the output layer are multiplied; evaluation scores the full softmax (`_next_token_loss`)."""
    shifted = [nn.functional.pad(y[:, 1:], (0, 1), value=-100).reshape(-1) for y in labels]
    flat = torch.cat([f.reshape(-1, f.size(-1)) for f in features])
    targets = torch.cat(shifted)
    valid = targets != -100
    flat, targets = flat[valid], targets[valid]
    n, vocabulary = targets.numel(), weight.size(0)
    if n == 0:
        return flat.sum() * 0.0
    from_batch, uniform = num_sampled - num_sampled // 2, num_sampled // 2
    log_chance = draw_chances(targets, vocabulary, num_sampled).log().float()
    drawn = torch.cat([targets[torch.randint(n, (from_batch,), device=targets.device)],
                       torch.randint(vocabulary, (uniform,), device=targets.device)]).unique()
    index = torch.cat([drawn, drawn.new_zeros(-len(drawn) % DRAWN_COLUMNS)])  # padding: left out below
    # index_select, not weight[...]: the latter's backward adds repeated rows in an order that
    # varies with the threads (a pretraining run no longer reproduced to the byte)
    true = (flat.float() * weight.index_select(0, targets).float()).sum(-1) - log_chance[targets]
    sampled = (flat @ weight.index_select(0, index).to(flat.dtype).t()).float() - log_chance[index]
    left_out = index == targets[:, None]
    left_out[:, len(drawn):] = True
    return (torch.logaddexp(true, sampled.masked_fill(left_out, float("-inf")).logsumexp(-1)) - true).mean()


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
