"""The token-classification head that sequence labelling relies on, as options over any encoder's
states: character features of each word, a task BiLSTM over the words, and a CRF output layer.

- Characters (Ma & Hovy 2016; Lample et al. 2016): a CNN over each word's UTF-8 bytes, max-pooled,
  concatenated with the encoder's state at the word's first sub-token. Casing and word shape
  carry much of NER, and a sub-word vocabulary hides them in rare words. The bytes come from the
  tokenizer's pieces (a vocabulary table kept in the model's buffers), so the model needs nothing
  but token ids: it works in `pipeline("token-classification")` too.
- Tagger (TagLM, Peters et al. 2017): a bidirectional LSTM over the words' features, so that a
  frozen language model's states are read by a sequence model rather than a linear probe.
- CRF: tag transitions scored jointly with the emissions, trained on the sequence likelihood and
  decoded with Viterbi under IOB2's constraints (no I-X after O, or after another type's tag, or
  at the start), so the decoded tags are always valid IOB2.

Any option on, the head works on words: a word starts at a labelled position when labels are
given (the data's own words), else at a piece that opens a word (Metaspace's "▁"); the words'
emissions are copied back to every piece of the word, so `logits` keep the (batch, tokens, tags)
shape transformers' pipelines read. With every option off it is a linear layer over the pieces.
"""

from __future__ import annotations

import torch
from torch import nn

# the options, all off by default; a model's config carries them (see TaggingHead)
TAGGING_DEFAULTS = {"char_embedding": 30, "char_filters": 0, "tagger_hidden": 0, "crf": False, "head_dropout": 0.1}
MAX_CHARS = 20  # bytes of a word the character CNN reads (longer words: their first 20)
MAX_PIECE = 16  # bytes of one vocabulary piece kept in the table
WORD_MARK = "▁"  # Metaspace's word-start marker


def iob2_allowed(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, transitions) masks of what IOB2 allows: I-X only after B-X or I-X."""
    def may_follow(prev: str | None, tag: str) -> bool:
        return not tag.startswith("I-") or (prev is not None and prev != "O" and prev[2:] == tag[2:])

    start = torch.tensor([may_follow(None, t) for t in names])
    trans = torch.tensor([[may_follow(a, b) for b in names] for a in names])
    return start, trans


class CRF(nn.Module):
    """A linear-chain CRF over word-level emissions (batch, words, tags) with a mask of real words
    (right-padded). Forbidden transitions score -1e4, which no sequence of valid ones can beat."""

    FORBIDDEN = -1e4

    def __init__(self, names: list[str]):
        super().__init__()
        n = len(names)
        self.transitions = nn.Parameter(torch.zeros(n, n))
        self.start = nn.Parameter(torch.zeros(n))
        self.end = nn.Parameter(torch.zeros(n))
        # the constraints follow from the tag names, they are not state: built on first use (a model
        # is built on the meta device by from_pretrained, where a tensor made here would hold no data)
        self.names, self._penalties = list(names), None

    def reset_parameters(self) -> None:
        for p in (self.transitions, self.start, self.end):
            nn.init.zeros_(p)

    def _scores(self):
        if self._penalties is None or self._penalties[0].device != self.start.device:
            start_ok, trans_ok = iob2_allowed(self.names)
            self._penalties = tuple((~ok).float().to(self.start.device) * self.FORBIDDEN for ok in (start_ok, trans_ok))
        start, trans = self._penalties
        return self.start + start, self.transitions + trans

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        start, trans = self._scores()
        alpha = start + emissions[:, 0]
        for t in range(1, emissions.size(1)):
            step = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t:t + 1], step, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        start, trans = self._scores()
        rows = torch.arange(emissions.size(0), device=emissions.device)
        total = start[tags[:, 0]] + emissions[rows, 0, tags[:, 0]]
        for t in range(1, emissions.size(1)):
            step = trans[tags[:, t - 1], tags[:, t]] + emissions[rows, t, tags[:, t]]
            total = total + step * mask[:, t]
        last = tags.gather(1, (mask.sum(1, keepdim=True) - 1).clamp(min=0)).squeeze(1)
        return total + self.end[last]

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of the gold sequences (rows with no word count zero)."""
        emissions = emissions.float()
        has_words = mask[:, 0]
        nll = (self.log_partition(emissions, mask) - self.score(emissions, tags, mask)) * has_words
        return nll.sum() / has_words.sum().clamp(min=1)

    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The best tag sequence per row (batch, words); padding positions hold the last real tag."""
        start, trans = self._scores()
        emissions = emissions.float()
        best = start + emissions[:, 0]
        pointers = []
        for t in range(1, emissions.size(1)):
            candidates = best.unsqueeze(2) + trans
            score, index = candidates.max(dim=1)
            keep = mask[:, t:t + 1]
            best = torch.where(keep, score + emissions[:, t], best)
            identity = torch.arange(best.size(1), device=best.device).expand_as(index)
            pointers.append(torch.where(keep, index, identity))  # padding: stay on the same tag
        tag = (best + self.end).argmax(dim=1)
        path = [tag]
        for index in reversed(pointers):
            tag = index.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        return torch.stack(path[::-1], dim=1)


class CharCNN(nn.Module):
    """Ma & Hovy's character CNN over bytes: embedding, one convolution, max over the word."""

    def __init__(self, embedding: int, filters: int, width: int = 3):
        super().__init__()
        self.embed = nn.Embedding(257, embedding, padding_idx=0)  # byte + 1; 0 pads
        self.conv = nn.Conv1d(embedding, filters, width, padding=width // 2)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """(..., MAX_CHARS) byte ids + 1 -> (..., filters); all-padding words give zeros."""
        shape = chars.shape[:-1]
        flat = chars.reshape(-1, chars.size(-1))
        hidden = self.conv(self.embed(flat).transpose(1, 2))  # (N, filters, chars)
        hidden = hidden.masked_fill((flat == 0).unsqueeze(1), torch.finfo(hidden.dtype).min)
        pooled = hidden.max(dim=2).values
        pooled = torch.where((flat != 0).any(1, keepdim=True), pooled, torch.zeros_like(pooled))
        return pooled.reshape(*shape, -1)


def init_module(module: nn.Module) -> bool:
    """A model's `_init_weights` for the head's modules, which transformers' initialisation does
    not know: from_pretrained leaves whatever a checkpoint lacks uninitialised until then."""
    if isinstance(module, (CRF, TaggingHead, nn.Conv1d, nn.LSTM)):
        module.reset_parameters()
        return True
    return False


class TaggingHead(nn.Module):
    """Emissions over an encoder's states, with the options above; see the module docstring."""

    def __init__(self, config, input_size: int):
        super().__init__()
        self.num_labels = config.num_labels
        self.word_level = bool(config.char_filters or config.tagger_hidden or config.crf)
        self.dropout = nn.Dropout(config.head_dropout)
        size = input_size
        self.chars = CharCNN(config.char_embedding, config.char_filters) if config.char_filters else None
        size += config.char_filters
        self.tagger = (nn.LSTM(size, config.tagger_hidden, batch_first=True, bidirectional=True)
                       if config.tagger_hidden else None)
        size = 2 * config.tagger_hidden if config.tagger_hidden else size
        self.classifier = nn.Linear(size, config.num_labels)
        names = [config.id2label[i] for i in range(config.num_labels)]
        self.crf = CRF(names) if config.crf else None
        if self.word_level:
            # the tokenizer's pieces: bytes and length of each (for the characters), whether it opens a
            # word or belongs to one (specials do neither); filled by set_vocabulary, saved with the model
            vocab = config.vocab_size
            self.register_buffer("piece_bytes", torch.zeros(vocab, MAX_PIECE, dtype=torch.uint8))
            self.register_buffer("piece_length", torch.zeros(vocab, dtype=torch.long))
            self.register_buffer("opens_word", torch.zeros(vocab, dtype=torch.bool))
            self.register_buffer("in_word", torch.zeros(vocab, dtype=torch.bool))

    def reset_parameters(self) -> None:
        """The piece table empty (set_vocabulary fills it); the submodules init themselves."""
        for table in (getattr(self, name, None) for name in ("piece_bytes", "piece_length", "opens_word", "in_word")):
            if table is not None:
                table.zero_()

    def set_vocabulary(self, tokenizer) -> None:
        self.reset_parameters()  # every row, specials included
        specials = set(tokenizer.all_special_ids)
        for piece, i in tokenizer.get_vocab().items():
            if i >= self.piece_bytes.size(0) or i in specials:
                continue
            data = piece.encode("utf-8")[:MAX_PIECE]
            self.piece_bytes[i, :len(data)] = torch.tensor(list(data), dtype=torch.uint8)
            self.piece_length[i] = len(data)
            self.opens_word[i] = piece.startswith(WORD_MARK)
            self.in_word[i] = True

    # ---------------------------------------------------------------- words

    def _words(self, input_ids, attention_mask, starts):
        """(position of each word's first piece (batch, words), word mask, word index of each
        position (-1 outside words))."""
        inside = self.in_word[input_ids]
        if attention_mask is not None:
            inside = inside & attention_mask.bool()
        starts = (self.opens_word[input_ids] if starts is None else starts) & inside
        index = starts.long().cumsum(1) - 1
        index = torch.where(inside & (index >= 0), index, torch.full_like(index, -1))
        counts = starts.sum(1)
        width = max(int(counts.max()), 1)
        position = torch.zeros(input_ids.size(0), width, dtype=torch.long, device=input_ids.device)
        rows, cols = starts.nonzero(as_tuple=True)
        position[rows, index[rows, cols]] = cols
        mask = torch.arange(width, device=input_ids.device) < counts.unsqueeze(1)
        return position, mask, index

    def _chars(self, input_ids, index, width: int) -> torch.Tensor:
        """(batch, words, MAX_CHARS) byte ids + 1 of each word: its pieces' bytes, in order."""
        batch, tokens = input_ids.shape
        length = self.piece_length[input_ids] * (index >= 0)
        before = length.cumsum(1) - length  # bytes before each position in the row
        word_first = torch.zeros(batch, width + 1, dtype=torch.long, device=input_ids.device)
        word_first.scatter_reduce_(1, (index + 1).clamp(min=0), before, "amin", include_self=False)
        offset = before - word_first.gather(1, (index + 1).clamp(min=0))
        pieces = self.piece_bytes[input_ids].long() + 1  # (batch, tokens, MAX_PIECE)
        j = torch.arange(MAX_PIECE, device=input_ids.device)
        where = offset.unsqueeze(2) + j
        ok = (j < length.unsqueeze(2)) & (where < MAX_CHARS) & (index >= 0).unsqueeze(2)
        chars = torch.zeros(batch, width * MAX_CHARS + 1, dtype=torch.long, device=input_ids.device)
        flat = torch.where(ok, index.unsqueeze(2) * MAX_CHARS + where, torch.full_like(where, width * MAX_CHARS))
        chars.scatter_(1, flat.reshape(batch, -1), torch.where(ok, pieces, 0).reshape(batch, -1))
        return chars[:, :-1].reshape(batch, width, MAX_CHARS)

    def _emissions(self, states, input_ids, attention_mask, starts):
        position, mask, index = self._words(input_ids, attention_mask, starts)
        features = states.gather(1, position.unsqueeze(2).expand(-1, -1, states.size(2)))
        if self.chars is not None:
            features = torch.cat([features, self.chars(self._chars(input_ids, index, mask.size(1)))], dim=-1)
        features = self.dropout(features)
        if self.tagger is not None:
            lengths = mask.sum(1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(features, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.tagger(packed)
            features, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=mask.size(1))
            features = self.dropout(features)
        return self.classifier(features), mask, index, position

    # ---------------------------------------------------------------- forward, decode

    def forward(self, states, input_ids, attention_mask=None, labels=None):
        """(loss or None, logits (batch, tokens, tags)). Under a CRF, outside training, each word's
        Viterbi tag tops its logits, so what reads the argmax (Trainer's validation metric, hence
        checkpoint selection and early stopping; transformers' pipelines) gets the CRF's decoding."""
        if not self.word_level:
            logits = self.classifier(states)
            loss = None if labels is None else nn.functional.cross_entropy(
                logits.reshape(-1, self.num_labels).float(), labels.reshape(-1), ignore_index=-100)
            return loss, logits
        starts = None if labels is None else labels != -100
        emissions, mask, index, position = self._emissions(states, input_ids, attention_mask, starts)
        loss = None
        if labels is not None:
            tags = labels.gather(1, position).clamp(min=0) * mask
            loss = (self.crf.nll(emissions, tags, mask) if self.crf is not None
                    else nn.functional.cross_entropy(emissions[mask].float(), tags[mask]))
        if self.crf is not None and not self.training:
            emissions = _on_top(emissions, self.crf.viterbi(emissions, mask))
        logits = emissions.gather(1, index.clamp(min=0).unsqueeze(2).expand(-1, -1, emissions.size(2)))
        return loss, logits * (index >= 0).unsqueeze(2)

    def decode(self, states, input_ids, attention_mask=None, starts=None) -> torch.Tensor:
        """The tag of every position (batch, tokens): each word's tag (Viterbi's under a CRF) on
        all its pieces; -100 outside words."""
        if not self.word_level:
            return self.classifier(states).argmax(-1)
        emissions, mask, index, _ = self._emissions(states, input_ids, attention_mask, starts)
        tags = self.crf.viterbi(emissions, mask) if self.crf is not None else emissions.argmax(-1)
        return torch.where(index >= 0, tags.gather(1, index.clamp(min=0)), torch.full_like(index, -100))


def _on_top(emissions: torch.Tensor, path: torch.Tensor) -> torch.Tensor:
    """The emissions with each word's `path` tag raised just above its best score."""
    spread = emissions.max(-1, keepdim=True).values - emissions.min(-1, keepdim=True).values
    return emissions + nn.functional.one_hot(path, emissions.size(-1)).to(emissions.dtype) * (spread + 1)
