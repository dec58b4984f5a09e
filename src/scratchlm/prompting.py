"""Prompt-based classification with our own pretrained language models: the task recast as the
model's own objective (LM-BFF, Gao et al. 2021; PET, Schick & Schütze 2021).

A task's `prompt` puts the text in a template, "{text} It was {mask}.", and gives each label
verbalizer words ("great", "terrible"). A causal LM scores each word as the continuation of the
text up to the slot; a masked LM fills the slot with as many [MASK] as the word has pieces.

- A word's score is the mean log-probability of its pieces (a sum would favour short words); a
  label's score is the log of the mean probability of its words.
- Calibration removes the prior a prompt imposes whatever the input, by dividing the label
  probabilities by an estimate of it: `batch` (Zhou et al. 2024), the mean label probabilities
  over the texts being classified (no labels read); `content-free` (Zhao et al. 2021), those the
  model gives "N/A". Our small LMs give "N/A" another bias than real text: content-free
  calibration left 98% of the demo's reviews and all of SST-2's in one class (docs/results.md).
- `prompt` uses the model as it is (zero-shot); `pet` trains the model's own LM head and body on
  the cross-entropy of the label scores, with no new parameters.

Prompts are built from token ids: the encoded text (without [CLS]/[SEP]) between the template's
pieces, each tokenized on its own; with Metaspace pre-tokenization that is the tokenization of the
whole string, as the template's pieces meet the text at word boundaries.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .tokenization import by_length

CONTENT_FREE = "N/A"


class Prompt(NamedTuple):
    """A template and verbalizers as token ids."""
    before: list[int]  # template pieces before {text}
    between: list[int]  # between {text} and {mask}
    after: list[int]  # after {mask} (read by a masked LM only)
    words: list[list[list[int]]]  # per label: its words, each a list of piece ids

    @classmethod
    def build(cls, tok, template: str, verbalizers: dict[str, list[str]], labels: list[str]) -> Prompt:
        def ids(text: str) -> list[int]:
            return tok(text, add_special_tokens=False)["input_ids"] if text.strip() else []

        before, rest = template.split("{text}")
        between, after = rest.split("{mask}")
        return cls(ids(before), ids(between), ids(after), [[ids(" " + w) for w in verbalizers[n]] for n in labels])


def _text_ids(row_ids: list[int], tok) -> list[int]:
    """An encoded text without its [CLS] and [SEP]."""
    return [i for i in row_ids if i not in (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)]


def _pad(rows: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.tensor([r + [value] * (width - len(r)) for r in rows])
    return ids, torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])


def _causal_scores(lm, contexts: list[list[int]], prompt: Prompt, pad: int) -> torch.Tensor:
    """(texts, labels) label scores of a causal LM: each word after the context, teacher-forced.
    A row is the context and the word less its last piece, so single-piece words share one row
    per text; the output layer runs only where a piece is read (it costs 4x the recurrent body
    over a whole review)."""
    rows: dict[tuple, int] = {}
    reads, owners = [], []  # per word: (row, first position, its pieces)
    for t, context in enumerate(contexts):
        for label, words in enumerate(prompt.words):
            for word in words:
                row = rows.setdefault(tuple(context + word[:-1]), len(rows))
                reads.append((row, len(context) - 1, word))
                owners.append((t, label))
    ids, mask = _pad([list(r) for r in rows], pad)
    at_row = torch.tensor([r for r, _, word in reads for _ in word])
    at_col = torch.tensor([start + j for _, start, word in reads for j in range(len(word))])
    pieces = torch.tensor([piece for _, _, word in reads for piece in word], device=lm.device)
    logits = _logits_at(lm, ids.to(lm.device), mask.to(lm.device), at_row, at_col)
    piece_logp = logits.float().log_softmax(-1).gather(1, pieces[:, None])[:, 0]
    word_scores = torch.stack([chunk.mean() for chunk in piece_logp.split([len(w) for _, _, w in reads])])
    return _label_scores(word_scores, owners, len(contexts), len(prompt.words))


def _logits_at(lm, ids: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """The LM's logits at (rows[i], cols[i]) only, where the model offers it (`logits_at`)."""
    if hasattr(lm, "logits_at"):
        return lm.logits_at(ids, mask, rows, cols)
    return lm(input_ids=ids, attention_mask=mask).logits[rows, cols]


def _masked_scores(lm, contexts: list[list[int]], prompt: Prompt, tok) -> torch.Tensor:
    """(texts, labels) label scores of a masked LM: each word's pieces in as many [MASK] slots."""
    rows, spans, owners = [], [], []
    for t, context in enumerate(contexts):
        for label, words in enumerate(prompt.words):
            for word in words:
                rows.append(context + [tok.mask_token_id] * len(word) + prompt.after + [tok.sep_token_id])
                spans.append((len(context), word))
                owners.append((t, label))
    ids, mask = _pad(rows, tok.pad_token_id)
    logp = lm(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits.float().log_softmax(-1)
    word_scores = torch.stack([logp[r, start + torch.arange(len(word)), torch.tensor(word)].mean()
                               for r, (start, word) in enumerate(spans)])
    return _label_scores(word_scores, owners, len(contexts), len(prompt.words))


def _label_scores(word_scores: torch.Tensor, owners: list[tuple[int, int]], texts: int, labels: int) -> torch.Tensor:
    """log(mean over a label's words of exp(word score)), per text and label."""
    out = []
    for t in range(texts):
        for label in range(labels):
            mine = word_scores[[i for i, o in enumerate(owners) if o == (t, label)]]
            out.append(torch.logsumexp(mine, 0) - math.log(len(mine)))
    return torch.stack(out).view(texts, labels)


def label_scores(lm, tok, prompt: Prompt, rows: list[list[int]], causal: bool) -> torch.Tensor:
    """(texts, labels) log-scores of each label for each encoded text, with gradients."""
    contexts = [[tok.cls_token_id, *prompt.before, *_text_ids(r, tok), *prompt.between] for r in rows]
    if causal:
        return _causal_scores(lm, contexts, prompt, tok.pad_token_id)
    return _masked_scores(lm, contexts, prompt, tok)


def content_free_prior(lm, tok, prompt: Prompt, causal: bool) -> torch.Tensor:
    """log p(label | content-free text): what the prompt makes the model say of nothing."""
    with torch.no_grad():
        scores = label_scores(lm, tok, prompt, [tok(CONTENT_FREE)["input_ids"]], causal)
    return scores.log_softmax(-1)[0]


def probabilities(lm, tok, prompt: Prompt, rows: list[list[int]], causal: bool, batch_size: int,
                  calibrate: str) -> list:
    """Label probabilities for every encoded text, calibrated as `calibrate` says (batch,
    content-free or none: finetune.prompting.calibrate), in batches of texts of similar length, no grad."""
    lm.eval()
    order, inverse = by_length([len(r) for r in rows])
    ordered, chunks = [rows[i] for i in order], []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            chunks.append(label_scores(lm, tok, prompt, ordered[start:start + batch_size], causal).log_softmax(-1))
        logp = torch.cat(chunks)
        if calibrate == "batch":
            logp = (logp - logp.exp().mean(0).log()).log_softmax(-1)
        elif calibrate == "content-free":
            logp = (logp - content_free_prior(lm, tok, prompt, causal)).log_softmax(-1)
        elif calibrate != "none":
            raise ValueError(f"calibrate={calibrate!r}: expected batch, content-free or none")
    out = list(logp.exp().cpu().numpy())
    return [out[i] for i in inverse]


class PromptModel(nn.Module):
    """PET for Trainer: the language model itself, its loss the cross-entropy of the label scores.
    No parameter is added: what trains is the LM's own body and head."""

    def __init__(self, lm, tok, prompt: Prompt, causal: bool):
        super().__init__()
        self.lm, self.tok, self.prompt, self.causal = lm, tok, prompt, causal
        self._keys_to_ignore_on_save = sorted(set(super().state_dict()) - set(self.state_dict()))

    def state_dict(self, *args, **kwargs):
        """Each tensor once: Trainer saves a plain module's checkpoints with safetensors, which
        refuses the LM's tied embedding and output weights twice; loading restores the tie."""
        seen, out = set(), {}
        for key, tensor in super().state_dict(*args, **kwargs).items():
            if (tensor.data_ptr(), tuple(tensor.shape)) not in seen:
                seen.add((tensor.data_ptr(), tuple(tensor.shape)))
                out[key] = tensor
        return out

    def tie_weights(self):
        self.lm.tie_weights()

    def forward(self, input_ids=None, labels=None, **kwargs):
        rows = [[i for i in row.tolist() if i != self.tok.pad_token_id] for row in input_ids]
        scores = label_scores(self.lm, self.tok, self.prompt, rows, self.causal)
        loss = nn.functional.cross_entropy(scores, labels) if labels is not None else None
        return {"loss": loss, "logits": scores}
