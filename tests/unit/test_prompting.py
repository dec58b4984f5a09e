"""Prompt scoring on toy language models whose weights are set by hand: the verbalizer a cue
favours wins, a word of several pieces scores the mean of its pieces' log-probabilities,
calibration (content-free or by the batch) removes a prompt's bias as computed by hand; and pet
adds no parameter."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from scratchlm.prompting import Prompt, PromptModel, label_scores, probabilities

VOCAB = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "▁good", "▁bad", "▁movie", "▁It", "▁was", "▁great", "▁terr", "ible",
         "▁N/A", "▁."]
ID = {piece: i for i, piece in enumerate(VOCAB)}


class Tokenizer:
    """Words to pieces by a fixed table (a word not in it: its pieces as listed)."""
    pad_token_id, cls_token_id, sep_token_id, mask_token_id = 0, 1, 2, 3
    SPLIT = {"terrible": ["▁terr", "ible"]}

    def __call__(self, text: str, add_special_tokens: bool = True):
        ids = [ID[p] for word in text.split() for p in self.SPLIT.get(word, ["▁" + word])]
        return {"input_ids": [1, *ids, 2] if add_special_tokens else ids}


class PrefixLM(nn.Module):
    """A causal toy LM: the logits at a position are a fixed table applied to the sum of the
    one-hot tokens so far, so a cue anywhere in the prefix moves every later prediction."""

    def __init__(self, table: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.table = nn.Parameter(table)
        self.bias = nn.Parameter(torch.zeros(len(VOCAB)) if bias is None else bias)
        self.device = torch.device("cpu")

    def forward(self, input_ids, attention_mask=None):
        counts = nn.functional.one_hot(input_ids, len(VOCAB)).float().cumsum(1)
        return SimpleNamespace(logits=counts @ self.table + self.bias)


def cue_table() -> torch.Tensor:
    table = torch.zeros(len(VOCAB), len(VOCAB))
    table[ID["▁good"], ID["▁great"]] = 3.0  # "good" before the slot favours "great"
    table[ID["▁bad"], ID["▁terr"]] = 3.0  # ... "bad" the first piece of "terrible"
    table[ID["▁terr"], ID["ible"]] = 5.0  # and "terr" is followed by "ible"
    return table


def prompt(tok, verbalizers=None) -> Prompt:
    return Prompt.build(tok, "{text} It was {mask}.", verbalizers or {"negative": ["terrible"], "positive": ["great"]},
                        ["negative", "positive"])


def test_the_verbalizer_the_cue_favours_wins():
    tok = Tokenizer()
    rows = [tok("good movie")["input_ids"], tok("bad movie")["input_ids"]]
    probs = probabilities(PrefixLM(cue_table()), tok, prompt(tok), rows, causal=True, batch_size=8, calibrate="none")
    assert [int(p.argmax()) for p in probs] == [1, 0]  # positive, negative


def test_texts_scored_in_length_order_come_back_in_their_own_order():
    tok = Tokenizer()
    rows = [tok(t)["input_ids"] for t in ["good good good movie", "bad movie", "good", "bad bad movie"]]
    table = cue_table()
    alone = [probabilities(PrefixLM(table), tok, prompt(tok), [r], causal=True, batch_size=1, calibrate="none")[0]
             for r in rows]
    batched = probabilities(PrefixLM(table), tok, prompt(tok), rows, causal=True, batch_size=2, calibrate="none")
    assert [int(p.argmax()) for p in batched] == [1, 0, 1, 0]
    assert all(torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-6) for a, b in zip(alone, batched))


def test_a_word_of_several_pieces_scores_the_mean_of_its_pieces_log_probabilities():
    tok, lm = Tokenizer(), PrefixLM(cue_table())
    p = prompt(tok)
    assert p.words[0] == [[ID["▁terr"], ID["ible"]]]
    row = tok("bad movie")["input_ids"]
    scores = label_scores(lm, tok, p, [row], causal=True)[0]
    context = [ID["[CLS]"], ID["▁bad"], ID["▁movie"], ID["▁It"], ID["▁was"]]
    logp = lm(torch.tensor([context + [ID["▁terr"], ID["ible"]]])).logits[0].log_softmax(-1)
    by_hand = (logp[len(context) - 1, ID["▁terr"]] + logp[len(context), ID["ible"]]) / 2
    assert scores[0].item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_a_label_with_several_words_scores_the_mean_of_their_probabilities():
    tok, lm = Tokenizer(), PrefixLM(cue_table())
    one = label_scores(lm, tok, prompt(tok), [tok("good movie")["input_ids"]], causal=True)[0]
    both = label_scores(lm, tok, prompt(tok, {"negative": ["terrible"], "positive": ["great", "good"]}),
                        [tok("good movie")["input_ids"]], causal=True)[0]
    context = torch.tensor([[ID["[CLS]"], ID["▁good"], ID["▁movie"], ID["▁It"], ID["▁was"]]])
    logp = lm(context).logits[0, -1].log_softmax(-1)
    by_hand = math.log((logp[ID["▁great"]].exp() + logp[ID["▁good"]].exp()).item() / 2)
    assert both[1].item() == pytest.approx(by_hand, rel=1e-5) and one[0].item() == pytest.approx(both[0].item())


def test_calibration_divides_by_what_the_prompt_says_of_nothing():
    """A model biased towards "great" calls a weakly negative text positive; the content-free
    input shows the bias, and dividing it out turns the decision, as computed by hand."""
    tok = Tokenizer()
    table = cue_table() * 0.2  # weak cues
    bias = torch.zeros(len(VOCAB))
    bias[ID["▁great"]] = 2.0
    lm = PrefixLM(table, bias)
    row = [tok("bad movie")["input_ids"]]
    raw = probabilities(lm, tok, prompt(tok), row, causal=True, batch_size=8, calibrate="none")[0]
    calibrated = probabilities(lm, tok, prompt(tok), row, causal=True, batch_size=8, calibrate="content-free")[0]
    prior = label_scores(lm, tok, prompt(tok), [tok("N/A")["input_ids"]], causal=True)[0].softmax(-1).detach()
    by_hand = torch.tensor(raw) / prior
    assert raw.argmax() == 1 and calibrated.argmax() == 0
    assert calibrated == pytest.approx((by_hand / by_hand.sum()).numpy(), rel=1e-5)


def test_batch_calibration_divides_by_the_mean_over_the_texts_classified():
    """A model biased towards "great" calls every text positive; the mean label probabilities
    over the texts show the bias, and dividing them out separates the weakly negative texts
    from the weakly positive ones, as computed by hand, in batches or not."""
    tok = Tokenizer()
    bias = torch.zeros(len(VOCAB))
    bias[ID["▁great"]] = 2.0
    lm = PrefixLM(cue_table() * 0.2, bias)
    rows = [tok(t)["input_ids"] for t in ("bad movie", "good movie", "bad bad movie", "good")]
    raw = torch.tensor(np.stack(probabilities(lm, tok, prompt(tok), rows, causal=True, batch_size=8, calibrate="none")))
    batched = np.stack(probabilities(lm, tok, prompt(tok), rows, causal=True, batch_size=3, calibrate="batch"))
    by_hand = raw / raw.mean(0)
    assert raw.argmax(1).tolist() == [1, 1, 1, 1]
    assert batched.argmax(1).tolist() == [0, 1, 0, 1]
    assert batched == pytest.approx((by_hand / by_hand.sum(1, keepdim=True)).numpy(), rel=1e-5)


def test_an_unknown_calibration_is_refused():
    tok = Tokenizer()
    with pytest.raises(ValueError, match="calibrate=True: expected batch, content-free or none"):
        probabilities(PrefixLM(cue_table()), tok, prompt(tok), [tok("good")["input_ids"]], causal=True, batch_size=8,
                      calibrate=True)


def test_a_masked_lm_fills_one_mask_per_piece():
    """A masked toy LM that reads the whole row: a [MASK] after "bad" wants "terr", the next one "ible"."""
    tok = Tokenizer()

    class Cloze(nn.Module):
        device = torch.device("cpu")

        def forward(self, input_ids, attention_mask=None):
            logits = torch.zeros(*input_ids.shape, len(VOCAB))
            bad = (input_ids == ID["▁bad"]).any(1)
            for b in range(input_ids.size(0)):
                masks = (input_ids[b] == ID["[MASK]"]).nonzero().flatten().tolist()
                for k, m in enumerate(masks):
                    wanted = ["▁terr", "ible"][k] if bad[b] and len(masks) == 2 else "▁great"
                    # a clear margin: with equal logits "terrible" and "great" tie after "bad"
                    logits[b, m, ID[wanted]] = 4.0 if wanted == "▁great" else 6.0
            return SimpleNamespace(logits=logits)

    rows = [tok("good movie")["input_ids"], tok("bad movie")["input_ids"]]
    probs = probabilities(Cloze(), tok, prompt(tok), rows, causal=False, batch_size=8, calibrate="none")
    assert [int(p.argmax()) for p in probs] == [1, 0]


def test_pet_trains_the_language_model_and_adds_no_parameter():
    tok, lm = Tokenizer(), PrefixLM(cue_table() * 0)
    model = PromptModel(lm, tok, prompt(tok), causal=True)
    assert {n.removeprefix("lm.") for n, _ in model.named_parameters()} == {n for n, _ in lm.named_parameters()}
    rows = torch.tensor([tok("good movie")["input_ids"], tok("bad movie")["input_ids"]])
    out = model(input_ids=rows, labels=torch.tensor([1, 0]))
    out["loss"].backward()
    assert out["logits"].shape == (2, 2) and lm.table.grad.abs().sum() > 0


@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_recurrent_lm_scores_only_where_a_piece_is_read_and_agrees_with_its_full_logits(bidirectional):
    """`logits_at` (the output layer at the read positions alone) gives the forward logits there,
    and the label scores come out the same as from a model without it."""
    from scratchlm.models.recurrent import RecurrentConfig, RecurrentForCausalLM

    torch.manual_seed(0)
    lm = RecurrentForCausalLM(RecurrentConfig(vocab_size=len(VOCAB), embedding_size=8, hidden_size=12, cell="gru",
                                              pad_token_id=0, bidirectional=bidirectional)).eval()
    ids = torch.randint(4, len(VOCAB), (3, 7))
    mask = torch.ones_like(ids)
    rows, cols = torch.tensor([0, 2, 2]), torch.tensor([6, 0, 3])
    assert torch.allclose(lm.logits_at(ids, mask, rows, cols), lm(ids, mask).logits[rows, cols], atol=1e-6)

    class Plain(nn.Module):  # the same model, seen through forward() alone
        device = lm.device

        def forward(self, input_ids, attention_mask=None):
            return lm(input_ids, attention_mask)

    tok, texts = Tokenizer(), [Tokenizer()("good movie")["input_ids"], Tokenizer()("bad")["input_ids"]]
    fast = label_scores(lm, tok, prompt(tok), texts, causal=True)
    slow = label_scores(Plain(), tok, prompt(tok), texts, causal=True)
    assert torch.allclose(fast, slow, atol=1e-5)
