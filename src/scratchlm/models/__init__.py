"""Model families, registered with the `transformers` Auto classes on import: our recurrent
language models, and `transformers`' own BERT for the encoder."""

from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
)

from ..errors import cannot_load
from .bert import BertForSparseMaskedLM, BertForTagging, BertTaggerConfig
from .recurrent import (
    RecurrentConfig,
    RecurrentForCausalLM,
    RecurrentForSequenceClassification,
    RecurrentForTokenClassification,
    RecurrentModel,
)

AutoConfig.register(RecurrentConfig.model_type, RecurrentConfig)
AutoModel.register(RecurrentConfig, RecurrentModel)
AutoModelForCausalLM.register(RecurrentConfig, RecurrentForCausalLM)
AutoModelForSequenceClassification.register(RecurrentConfig, RecurrentForSequenceClassification)
AutoModelForTokenClassification.register(RecurrentConfig, RecurrentForTokenClassification)
AutoConfig.register(BertTaggerConfig.model_type, BertTaggerConfig)
AutoModelForTokenClassification.register(BertTaggerConfig, BertForTagging)


def build_config(spec: dict, tokenizer):
    """The model config from a `pretrain.models.<name>` entry of params and the tokenizer."""
    if spec["arch"] == "bert":
        return BertConfig(vocab_size=len(tokenizer), hidden_size=spec["hidden_size"],
                          num_hidden_layers=spec["num_layers"], num_attention_heads=spec["num_heads"],
                          intermediate_size=spec["intermediate_size"], hidden_dropout_prob=spec["dropout"],
                          attention_probs_dropout_prob=spec["dropout"],
                          max_position_embeddings=spec["max_position"], pad_token_id=tokenizer.pad_token_id)
    return RecurrentConfig(vocab_size=len(tokenizer), cell=spec["cell"], embedding_size=spec["embedding_size"],
                           hidden_size=spec["hidden_size"], num_layers=spec["num_layers"],
                           dropout=spec["dropout"], tie_word_embeddings=spec["tie_embeddings"],
                           bidirectional=spec["bidirectional"], pad_token_id=tokenizer.pad_token_id,
                           embedding_dropout=spec["embedding_dropout"], weight_drop=spec["weight_drop"],
                           variational=spec["variational"], activation_reg=spec["activation_reg"],
                           temporal_activation_reg=spec["temporal_activation_reg"])


def pretraining_model(spec: dict, tokenizer, key: str = "pretrain.models"):
    """The model with its pretraining head: causal LM (recurrent) or masked LM (BERT), fresh, or
    loaded from the spec's `checkpoint`."""
    if spec.get("checkpoint"):
        try:
            return AutoModelForMaskedLM.from_pretrained(spec["checkpoint"], revision=spec["revision"])
        except Exception as e:  # offline, unknown id, missing files: all end the same way
            raise cannot_load(f"{key}.checkpoint = {spec['checkpoint']!r}", e, "Point it at a local copy (a directory "
                              "from save_pretrained), or set it to null to pretrain from scratch") from None
    config = build_config(spec, tokenizer)
    if spec["arch"] == "bert":
        return with_dropout(BertForSparseMaskedLM(config), spec["pretraining_dropout"])
    model = RecurrentForCausalLM(config)
    model.sampled_softmax = spec["sampled_softmax"]  # pretraining's alone: not saved with the model
    return model


def with_dropout(model, rate: float | None):
    """The model with every dropout layer at `rate` (None: as its config says). The config keeps
    its own rates, so the saved model fine-tunes with those."""
    if rate is not None:
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = rate
    return model


def is_causal(spec: dict) -> bool:
    return spec["arch"] == "recurrent"


def language_model(path, spec: dict):
    """A pretrained model with its LM head, to train further: causal (recurrent), or masked LM
    scoring the masked positions only (BERT; the same weights as BertForMaskedLM)."""
    return (AutoModelForCausalLM if is_causal(spec) else BertForSparseMaskedLM).from_pretrained(path)


def auto_class(task_type: str):
    """The Auto class that builds and loads a task type's models (ours and BERT)."""
    if task_type == "sequence-classification":
        return AutoModelForSequenceClassification
    return AutoModelForTokenClassification


__all__ = ["BertForTagging", "BertTaggerConfig", "RecurrentConfig", "RecurrentModel", "RecurrentForCausalLM",
           "RecurrentForSequenceClassification", "RecurrentForTokenClassification", "build_config",
           "pretraining_model", "is_causal", "auto_class", "language_model"]
