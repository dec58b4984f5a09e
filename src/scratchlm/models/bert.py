"""transformers' BERT, two ways: a masked LM scoring only the masked positions in training, and a
token classifier with the tagging head's options (characters, a BiLSTM tagger, a CRF).

In this small encoder the MLM head's decoder (hidden x vocab, e.g. 64 x 4000) is most of the
FLOPs, and BertForMaskedLM runs it on every position although the loss reads only the 15% that
were masked. Scoring those alone (the "sparse prediction" of Geiping & Goldstein's cramming
recipe and of ModernBERT) gives the same loss and gradients for a fraction of the work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertForMaskedLM, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput, TokenClassifierOutput

from .tagging import TAGGING_DEFAULTS, TaggingHead, init_module

ROWS = 64  # the scored rows are padded to a multiple of this (see forward)
# BERT's attention kernel for training, by device. On the CPU PyTorch's scaled-dot-product
# kernel (flash attention for the CPU) spends ten times its forward in the backward at our
# sequence lengths; the eager softmax trains faster (bf16, sequence 128: MLM step 1.13x with
# dropout, 1.31x without; a padded classification step 1.07x; docs/performance.md).
TRAINING_ATTENTION = {"cpu": "eager"}  # elsewhere: SDPA, transformers' default


def use_training_attention(model, device: str) -> None:
    """Set a BERT model's attention kernel for training on `device` (a runtime choice: it is not
    saved with the model). Other models, and PEFT-wrapped ones' base, are handled alike."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if isinstance(base, BertPreTrainedModel):
        base.set_attn_implementation(TRAINING_ATTENTION.get(device, "sdpa"))


class BertForSparseMaskedLM(BertForMaskedLM):
    """BertForMaskedLM with the same weights and names (AutoModelFor* load what it saves); with
    `labels`, `logits` holds the masked positions' rows only, in row-major order."""

    def forward(self, input_ids=None, labels=None, **kwargs):
        if labels is None:
            return super().forward(input_ids=input_ids, **kwargs)
        kwargs.pop("return_dict", None)
        hidden = self.bert(input_ids, return_dict=True, **kwargs).last_hidden_state.flatten(0, 1)
        flat = labels.flatten()
        rows = flat.ne(-100).nonzero().squeeze(1)
        # The masked count varies per batch; tensors of ever-new sizes fragment glibc's heap
        # (peak RSS above the dense head's). Padding the count to a multiple of ROWS with
        # ignored rows keeps the sizes few: about half the peak, at the same speed
        # (docs/performance.md).
        n = len(rows)
        rows = torch.cat([rows, rows.new_zeros(-n % ROWS)])
        targets = flat[rows]
        targets[n:] = -100
        logits = self.cls(hidden[rows])
        loss = F.cross_entropy(logits.float(), targets)
        return MaskedLMOutput(loss=loss, logits=logits[:n])


class BertTaggerConfig(BertConfig):
    """BERT's config with the tagging head's options (a model type of its own, so that the Auto
    classes load BertForTagging)."""
    model_type = "scratchlm-bert-tagger"

    def __init__(self, **kwargs):
        for key, value in TAGGING_DEFAULTS.items():
            setattr(self, key, kwargs.pop(key, value))
        super().__init__(**kwargs)


class BertForTagging(BertPreTrainedModel):
    """BERT's encoder under the tagging head (models/tagging.py); it loads a pretrained BERT
    checkpoint's `bert.*` weights as BertForTokenClassification does."""
    config_class = BertTaggerConfig

    def __init__(self, config: BertTaggerConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.head = TaggingHead(config, config.hidden_size)
        self.post_init()

    def _init_weights(self, module):
        if not init_module(module):
            super()._init_weights(module)

    def _states(self, input_ids, attention_mask):
        return self.dropout(self.bert(input_ids, attention_mask=attention_mask).last_hidden_state)

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs) -> TokenClassifierOutput:
        loss, logits = self.head(self._states(input_ids, attention_mask), input_ids, attention_mask, labels)
        return TokenClassifierOutput(loss=loss, logits=logits)

    def decode(self, input_ids, attention_mask=None, starts=None) -> torch.Tensor:
        """Each position's tag (Viterbi's under a CRF); -100 outside words (see TaggingHead)."""
        return self.head.decode(self._states(input_ids, attention_mask), input_ids, attention_mask, starts)
