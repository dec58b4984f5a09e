"""Recurrent language models (GRU / LSTM / Elman RNN) as a real `transformers` model family:
a config, a base model and task heads that `save_pretrained`/`from_pretrained` through
safetensors, train with `Trainer` and load through the Auto classes.

The base model is embedding -> dropout -> stacked nn.GRU/LSTM/RNN over right-padded batches.
It is causal, so padding after a sequence's last token cannot change that token's state, and
"last" pooling reads the state at the last real token without packing the batch.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import (BaseModelOutput, CausalLMOutput, SequenceClassifierOutput,
                                           TokenClassifierOutput)

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}
POOLINGS = ("last", "mean", "max", "concat")


class RecurrentConfig(PretrainedConfig):
    model_type = "scratchlm-recurrent"

    def __init__(self, vocab_size: int = 8000, cell: str = "gru", embedding_size: int = 128,
                 hidden_size: int = 256, num_layers: int = 1, dropout: float = 0.1,
                 pooling: str = "last", tie_word_embeddings: bool = True, pad_token_id: int = 0,
                 initializer_range: float = 0.02, **kwargs):
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
        self.pooling = pooling
        self.initializer_range = initializer_range
        super().__init__(pad_token_id=pad_token_id, tie_word_embeddings=tie_word_embeddings, **kwargs)


class RecurrentPreTrainedModel(PreTrainedModel):
    config_class = RecurrentConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, tuple(CELLS.values())):
            module.reset_parameters()  # PyTorch's uniform(-1/sqrt(H), 1/sqrt(H)), the usual RNN init


class RecurrentModel(RecurrentPreTrainedModel):
    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = CELLS[config.cell](config.embedding_size, config.hidden_size, num_layers=config.num_layers,
                                      batch_first=True, dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings

    def set_input_embeddings(self, value):
        self.embeddings = value

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **kwargs) -> BaseModelOutput:
        hidden, _ = self.rnn(self.dropout(self.embeddings(input_ids)))
        return BaseModelOutput(last_hidden_state=self.dropout(hidden))


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
        hidden = self.model(input_ids, attention_mask).last_hidden_state
        logits = self.lm_head(self.proj(hidden))
        loss = None
        if labels is not None:
            # position t predicts token t+1
            loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(),
                                               labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # a recurrent state is not a key/value cache

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        # no state cache: each step re-reads the prefix (short samples; keeps the model simple)
        return {"input_ids": input_ids, "attention_mask": attention_mask}


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """Sequence vector from (B, T, H) states; padding is on the right. `concat` is ULMFiT's
    [last; max; mean] (3H): max and mean give every position a direct gradient path, which a
    pretrained recurrent state, tuned for next-token prediction, needs."""
    if how == "concat":
        return torch.cat([pool(hidden, attention_mask, h) for h in ("last", "max", "mean")], dim=-1)
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if how == "last":
        last = attention_mask.sum(1).clamp(min=1) - 1
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    if how == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(1).values


class RecurrentForSequenceClassification(RecurrentPreTrainedModel):
    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RecurrentModel(config)
        width = config.hidden_size * (3 if config.pooling == "concat" else 1)
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs) -> SequenceClassifierOutput:
        hidden = self.model(input_ids, attention_mask).last_hidden_state
        logits = self.classifier(pool(hidden, attention_mask, self.config.pooling))
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class RecurrentForTokenClassification(RecurrentPreTrainedModel):
    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RecurrentModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs) -> TokenClassifierOutput:
        logits = self.classifier(self.model(input_ids, attention_mask).last_hidden_state)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.reshape(-1, self.num_labels).float(), labels.reshape(-1),
                                               ignore_index=-100)
        return TokenClassifierOutput(loss=loss, logits=logits)
