"""Model families, registered with the `transformers` Auto classes on import."""

from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification)

from .recurrent import (RecurrentConfig, RecurrentForCausalLM, RecurrentForSequenceClassification,
                        RecurrentForTokenClassification, RecurrentModel)

AutoConfig.register(RecurrentConfig.model_type, RecurrentConfig)
AutoModel.register(RecurrentConfig, RecurrentModel)
AutoModelForCausalLM.register(RecurrentConfig, RecurrentForCausalLM)
AutoModelForSequenceClassification.register(RecurrentConfig, RecurrentForSequenceClassification)
AutoModelForTokenClassification.register(RecurrentConfig, RecurrentForTokenClassification)


def build_config(spec: dict, tokenizer, **extra) -> RecurrentConfig:
    """The model config from a `pretrain.models.<name>` entry of params and the tokenizer."""
    return RecurrentConfig(vocab_size=len(tokenizer), cell=spec["cell"], embedding_size=spec["embedding_size"],
                           hidden_size=spec["hidden_size"], num_layers=spec["num_layers"],
                           dropout=spec["dropout"], tie_word_embeddings=spec["tie_embeddings"],
                           pad_token_id=tokenizer.pad_token_id, **extra)


__all__ = ["RecurrentConfig", "RecurrentModel", "RecurrentForCausalLM", "RecurrentForSequenceClassification",
           "RecurrentForTokenClassification", "build_config"]
