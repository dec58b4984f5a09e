"""Fine-tuning speed as time-to-accuracy: the training wall time until validation accuracy first
reaches what the tutorial loop (a) reaches after `target_examples` (20,000) training examples.

Contenders, all on the same data, the same tokenizer, the same model (the pipeline's `gru`
model spec, built by finetune.build_model with method `scratch`, so identical initial weights),
the same learning rate (the pipeline's finetune.training.lr), the same torch threads and the
training stages' environment (TOKENIZERS_PARALLELISM=false unless set, as cli.main has it),
except while (b) and (c) tokenize their training set: there the tokenizers library's thread pool is
on, as it is in run_glue.py (nothing turns it off) and in our encode stage (cli.main turns it on):

(a) the tutorial chapters' loop: a `Dataset` that tokenizes in `__getitem__` with
    padding='max_length', max_length=128; DataLoader batch 16; plain PyTorch loop, AdamW at a
    constant rate, fp32.
(b) a run_glue-style Trainer: the texts tokenized up front by `datasets.map(batched=True)`
    without padding, DataCollatorWithPadding (dynamic padding), TrainingArguments defaults
    (batch 8, linear decay, no warmup) except the learning rate: Trainer's default 5e-5 is a
    transformer fine-tuning rate at which a randomly initialised GRU barely moves.
(c) our pipeline: scratchlm.stages.encode.encode (pre-tokenized Arrow with a `length` column),
    training.arguments and Trainer as finetune.run builds them (group_by_length, the precision
    params.yaml's `precision` picks: bf16 autocast on a CPU with AVX512-BF16 or AMX) with batch
    size and schedule sized for SST-2 (RACE_SCHEDULE), and finetune's collator.

The clock starts before any tokenization (tokenizing is part of each contender's cost) and
stops while the harness evaluates: every contender is evaluated on the validation split every
`cadence` training examples by the same function, and that time is excluded for all alike.
The pipeline's own evaluation, checkpointing and early stopping are off in (c), as checkpoint
saving is in (b): evaluation is the harness's business here. (b) and (c) stop at the target or
after `budget_factor` times (a)'s whole run; not reached means a null speedup.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import sources
from .common import Outcome, Row, at_least, fmt

TUTORIAL_BATCH, TUTORIAL_MAX_LENGTH = 16, 128
RUN_GLUE_MAX_LENGTH = 128  # run_glue.py's --max_seq_length default
# (c)'s settings sized for SST-2's 67k examples, as a user would set finetune.training for it
# (the learning rate stays the one all contenders share): the demo's 6 epochs with 10% warmup
# would spend the first 40k examples warming up (measured: majority-class accuracy for the
# first 6,400), and batch 64 reached the target sooner than 32 (8.7 s vs 10.4 s, one run)
RACE_SCHEDULE = {"epochs": 1, "warmup_ratio": 0.02, "batch_size": 64}


@dataclass(frozen=True)
class Sizes:
    train: int | None     # training rows (None: all of SST-2, or target_examples synthetic ones)
    dev: int | None       # validation rows (None: all 872)
    target_examples: int  # what (a) trains on before its accuracy becomes the target
    cadence: int          # evaluate at the first step past every multiple of this many examples
    embedding: int | None  # None: the pipeline's gru spec
    hidden: int | None
    budget_factor: float = 2.0


FULL = Sizes(train=None, dev=None, target_examples=20_000, cadence=800, embedding=None, hidden=None)
QUICK = Sizes(train=320, dev=64, target_examples=128, cadence=64, embedding=16, hidden=32)


class Tracker:
    """One contender's clock and validation curve: called after every optimizer step, it
    evaluates each `cadence` examples with the clock stopped and says when to stop."""

    def __init__(self, evaluate, cadence: int, max_examples: float = math.inf, budget_s: float = math.inf,
                 target: float | None = None):
        self.evaluate, self.cadence, self.max_examples = evaluate, cadence, max_examples
        self.budget_s, self.target = budget_s, target
        self.curve: list[dict] = []
        self.next_eval = cadence
        self.excluded = 0.0
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.excluded

    def after_step(self, model, examples: int) -> bool:
        if examples < self.next_eval:
            return False
        while self.next_eval <= examples:
            self.next_eval += self.cadence
        seconds = self.elapsed()
        paused = time.perf_counter()
        accuracy = round(self.evaluate(model), 4)
        self.excluded += time.perf_counter() - paused
        self.curve.append({"examples": examples, "seconds": round(seconds, 2), "accuracy": accuracy})
        reached = self.target is not None and accuracy >= self.target
        return reached or examples >= self.max_examples or seconds >= self.budget_s

    def first_reaching(self, target: float) -> dict | None:
        return next((point for point in self.curve if point["accuracy"] >= target), None)

    def summary(self, target: float) -> dict:
        last, hit = self.curve[-1], self.first_reaching(target)
        return {"examples_per_second": round(last["examples"] / last["seconds"], 1),
                "seconds_to_target": hit and hit["seconds"], "examples_to_target": hit and hit["examples"],
                "best_accuracy": max(p["accuracy"] for p in self.curve), "curve": self.curve}


def evaluator(tok, texts: list[str], labels: list[int], max_length: int, batch_size: int = 128):
    """Validation accuracy, computed the same way for every contender (length-sorted batches,
    dynamic padding); tokenized once, outside every clock."""
    import torch

    ids = tok(texts, truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batches = [(tok.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt"),
                torch.tensor([labels[i] for i in chunk]))
               for chunk in (order[s:s + batch_size] for s in range(0, len(order), batch_size))]

    def evaluate(model) -> float:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(**x).logits.argmax(-1) == y).sum()) for x, y in batches)
        model.train(was_training)
        return correct / len(labels)

    return evaluate


def model_factory(params: dict, tok, sizes: Sizes, folder: Path):
    """A function returning the benchmark model, fresh and identical each time: the pipeline's
    `gru` spec (its sizes overridden in quick mode) through build_config and build_model."""
    from scratchlm.finetuning import build_model
    from scratchlm.methods import METHODS
    from scratchlm.models import build_config

    spec = dict(params["pretrain"]["models"]["gru"])
    spec.update({k: v for k, v in (("embedding_size", sizes.embedding), ("hidden_size", sizes.hidden)) if v})
    build_config(spec, tok).save_pretrained(str(folder))
    pooling, seed = params["finetune"]["pooling"], params["seed"]
    return lambda: build_model(METHODS["scratch"], folder, "sequence-classification", sources.LABELS, pooling, seed)


def tutorial_dataset(texts: list[str], labels: list[int], tok):
    """The tutorial chapters' Dataset: one example tokenized per __getitem__, padded to 128."""
    import torch

    class TutorialDataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(texts)

        def __getitem__(self, i):
            enc = tok(texts[i], padding="max_length", truncation=True, max_length=TUTORIAL_MAX_LENGTH,
                      return_tensors="pt")
            return {"input_ids": enc["input_ids"][0], "attention_mask": enc["attention_mask"][0],
                    "labels": torch.tensor(labels[i])}

    return TutorialDataset()


def tutorial(model, tok, data: sources.Labelled, lr: float, seed: int, tracker: Tracker) -> int:
    """(a): a plain PyTorch loop over the tutorial Dataset, epochs until the tracker stops it.
    Returns the batch size, as the other contenders do."""
    import torch

    loader = torch.utils.data.DataLoader(tutorial_dataset(data.train_texts, data.train_labels, tok),
                                         batch_size=TUTORIAL_BATCH, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    seen = 0
    while True:
        for batch in loader:
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            seen += len(batch["labels"])
            if tracker.after_step(model, seen):
                return TUTORIAL_BATCH


def _stopper(tracker: Tracker, batch_size: int):
    """Trainer callback: the tracker sees every step (examples = steps x batch size)."""
    from transformers import TrainerCallback

    class Stopper(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if tracker.after_step(model, state.global_step * batch_size):
                control.should_training_stop = True

    return Stopper()


def _train(model, args, train_set, collator, tracker: Tracker, trainer_class=None) -> int:
    """Train until the tracker stops it (or the epochs end); returns the batch size. Without
    progress bars (disable_tqdm) Trainer prints every log: its printer goes too."""
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback

    trainer = (trainer_class or Trainer)(model=model, args=args, train_dataset=train_set, data_collator=collator,
                      callbacks=[_stopper(tracker, args.train_batch_size)])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return args.train_batch_size


@contextlib.contextmanager
def all_cores_tokenizing():
    """The tokenizers library's thread pool on for the block (it reads the variable per call)."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM")
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def trainer_defaults(model, tok, data: sources.Labelled, lr: float, seed: int, folder: Path,
                     tracker: Tracker) -> int:
    """(b): run_glue.py's recipe with dynamic padding and TrainingArguments' defaults."""
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, TrainingArguments

    raw = Dataset.from_dict({"sentence": data.train_texts, "label": data.train_labels})
    with all_cores_tokenizing():
        train_set = raw.map(lambda b: tok(b["sentence"], padding=False, max_length=RUN_GLUE_MAX_LENGTH,
                                          truncation=True), batched=True)
    args = TrainingArguments(output_dir=str(folder), learning_rate=lr, seed=seed, use_cpu=True, report_to=[],
                             save_strategy="no", disable_tqdm=True)
    return _train(model, args, train_set, DataCollatorWithPadding(tok), tracker)


def pipeline(model, tok, data: sources.Labelled, params: dict, precision: str, folder: Path,
             tracker: Tracker) -> int:
    """(c): our encode stage's function, then finetune.run's data, arguments and collator."""
    from datasets import Dataset, DatasetDict

    from scratchlm import training
    from scratchlm.finetuning import collator
    from scratchlm.stages.data import features
    from scratchlm.stages.encode import encode
    from scratchlm.training_config import training_config

    raw = DatasetDict({"train": Dataset.from_dict({"text": data.train_texts, "label": data.train_labels},
                                                  features=features("classification", sources.LABELS))})
    with all_cores_tokenizing():
        train_set = encode(raw, tok, "sequence-classification", params["encode"]["max_length"])["train"]
    cfg = training_config(params, "finetune", "gru").replace(**RACE_SCHEDULE)
    ctx = training.Context("cpu", precision, params["seed"], 1)
    args = training.arguments(cfg, folder, ctx, "accuracy", True, train_sampling_strategy="group_by_length",
                              remove_unused_columns=False)
    args = replace(args, eval_strategy="no", save_strategy="no", load_best_model_at_end=False, disable_tqdm=True)
    return _train(model, args, train_set, collator("sequence-classification", tok), tracker, training.LengthListTrainer)


def padding_share(tok, texts: list[str]) -> float:
    """Share of the tutorial's 128 positions per example that are padding."""
    lengths = [len(ids) for ids in tok(texts, truncation=True, max_length=TUTORIAL_MAX_LENGTH)["input_ids"]]
    return round(1 - sum(lengths) / (len(lengths) * TUTORIAL_MAX_LENGTH), 4)


def warm_up(model, tok, data: sources.Labelled) -> None:
    """Two training steps at the tutorial's shape and at a short dynamic one on a throwaway
    model: the process's one-time costs (torch's first kernels and allocations, a few seconds
    here) are paid before any clock starts, not by whichever contender happens to run first."""
    import torch

    tutorial_batch = next(iter(torch.utils.data.DataLoader(tutorial_dataset(data.train_texts, data.train_labels, tok),
                                                          batch_size=TUTORIAL_BATCH)))
    short_batch = dict(tok.pad(tok(data.train_texts[:32]), return_tensors="pt"),
                       labels=torch.tensor(data.train_labels[:32]))
    optimizer = torch.optim.AdamW(model.parameters())
    model.train()
    for batch in (tutorial_batch, short_batch) * 2:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def _race(data: sources.Labelled, tok, params: dict, sizes: Sizes, folder: Path) -> dict:
    """Run (a) to fix the target, then (b) and (c) against it: the target and each contender's
    batch size, throughput, time to the target and curve."""
    from scratchlm.devices import pick_precision
    from scratchlm.training_config import training_config

    lr, seed = training_config(params, "finetune", "gru").lr, params["seed"]
    precision = pick_precision(params["precision"], "cpu")
    evaluate = evaluator(tok, data.dev_texts, data.dev_labels, params["encode"]["max_length"])
    fresh = model_factory(params, tok, sizes, folder / "init")
    warm_up(fresh(), tok, data)
    a = Tracker(evaluate, sizes.cadence, max_examples=sizes.target_examples)
    batch_a = tutorial(fresh(), tok, data, lr, seed, a)
    target, budget = a.curve[-1]["accuracy"], sizes.budget_factor * a.curve[-1]["seconds"]
    b = Tracker(evaluate, sizes.cadence, budget_s=budget, target=target)
    batch_b = trainer_defaults(fresh(), tok, data, lr, seed, folder / "trainer", b)
    c = Tracker(evaluate, sizes.cadence, budget_s=budget, target=target)
    batch_c = pipeline(fresh(), tok, data, params, precision, folder / "pipeline", c)
    return {"target_accuracy": target, "budget_s": round(budget, 1), "learning_rate": lr,
            "tutorial": {"batch_size": batch_a, "precision": "fp32", **a.summary(target)},
            "trainer_defaults": {"batch_size": batch_b, "precision": "fp32", **b.summary(target)},
            "pipeline": {"batch_size": batch_c, "precision": precision, **c.summary(target)}}


def _speedup(race: dict, peer: str) -> float | None:
    ours, theirs = race["pipeline"]["seconds_to_target"], race[peer]["seconds_to_target"]
    return round(theirs / ours, 2) if ours is not None and theirs is not None else None


def _setup(contender: dict) -> str:
    return f"batch {contender['batch_size']}, {contender['precision']}"


def _not_reached(race: dict, name: str) -> str:
    return (f"{name} did not reach the target accuracy {race['target_accuracy']} within {race['budget_s']} s "
            f"(best {race[name]['best_accuracy']})")


def measure(data: sources.Labelled, tok, params: dict, sizes: Sizes) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        race = _race(data, tok, params, sizes, Path(tmp))
    race.update(data=data.source, train_examples=len(data.train_texts), validation_examples=len(data.dev_texts),
                target_examples=sizes.target_examples, cadence_examples=sizes.cadence,
                tutorial_padding_share=padding_share(tok, data.train_texts),
                clock="training wall time including tokenization; evaluation excluded for every contender")
    out = Outcome(detail=race)
    ours = race["pipeline"]
    for key, peer, label, goal in (("finetune_speedup_vs_tutorial", "tutorial", "tutorial loop (a)", 10),
                                   ("finetune_speedup_vs_trainer_defaults", "trainer_defaults",
                                    "Trainer defaults (b)", 2)):
        out.summary[key] = speedup = _speedup(race, peer)
        if speedup is None:
            out.nulls[key] = _not_reached(race, "pipeline" if ours["seconds_to_target"] is None else peer)
        theirs = race[peer]
        out.rows.append(Row(f"fine-tuning time to accuracy {race['target_accuracy']}: ours ({_setup(ours)}) "
                            f"vs {label} ({_setup(theirs)})",
                            fmt(ours["seconds_to_target"], " s", 1), fmt(theirs["seconds_to_target"], " s", 1),
                            speedup, f"≥ {goal}×", at_least(speedup, goal), key))
        ratio = round(ours["examples_per_second"] / theirs["examples_per_second"], 2)
        out.rows.append(Row(f"fine-tuning examples/s: ours vs {label}", fmt(ours["examples_per_second"], "", 0),
                            fmt(theirs["examples_per_second"], "", 0), ratio, "—", None))
    return out
