"""Model FLOPs per token of a language-model training step: the matrix multiplies of the forward
pass, times 3 (the backward pass costs about twice the forward). Elementwise work, norms and
the optimizer are not counted: model FLOP utilisation is model FLOPs per second over the
hardware's matmul peak, as PaLM and nanoGPT count it.

- Recurrent LM (per direction of an ELMo-style bidirectional model): per layer a GRU does 3
  gate blocks and an LSTM 4, each 2*(E*H + H*H); then the projection to the embedding width and
  the tied softmax over the vocabulary, or, sampled, over the classes it draws (and each
  position's own).
- BERT, masked LM with the sparse head (models/bert.py): per layer the Q, K, V and output
  projections (8*H^2), the attention scores and their weighted sum (4*S*H for a sequence of S),
  the feed-forward block (4*H*I); the head's transform and decoder (2*H^2 + 2*H*V) run on the
  masked share of the tokens only.
"""

from __future__ import annotations

GATES = {"gru": 3, "lstm": 4, "rnn": 1}


def recurrent(config, classes: float | None = None) -> float:
    """`classes`: the output classes a sampled softmax scores per position (default: all)."""
    e, h, v = config.embedding_size, config.hidden_size, classes or config.vocab_size
    body = 0.0
    for layer in range(config.num_layers):
        width_in = e if layer == 0 else h
        body += GATES[config.cell] * 2 * (width_in * h + h * h)
    head = (2 * h * e if h != e else 0) + 2 * e * v
    directions = 2 if config.bidirectional else 1
    return 3 * directions * (body + head)


def bert(config, sequence: int, masked_share: float) -> float:
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    layer = 8 * h * h + 4 * sequence * h + 4 * h * i
    head = masked_share * (2 * h * h + 2 * h * v)
    return 3 * (config.num_hidden_layers * layer + head)


def per_token(config, sequence: int, masked_share: float = 0.15, classes: float | None = None) -> float:
    """The training-step FLOPs per token of one of our language models' configs (`classes`: a
    recurrent LM's sampled softmax's classes per position)."""
    if config.model_type == "bert":
        return bert(config, sequence, masked_share)
    return recurrent(config, classes)
