"""The console's progress line: written to the descriptor the rule hands the job, nowhere else."""

import os
from types import SimpleNamespace

from scratchlm import console, training


def test_progress_lines_go_to_the_console_descriptor_only(monkeypatch, capsys):
    read, write = os.pipe()
    monkeypatch.setenv(console.FD_ENV, str(write))
    monkeypatch.setattr(console, "EVERY_S", 0.0)
    console.start("finetune ner/gru/full")
    progress = training.Progress(seed=42)
    state = SimpleNamespace(global_step=0, max_steps=400)
    progress.on_train_begin(None, state, None)
    state.global_step = 100
    progress.on_log(None, state, None, logs={"loss": 0.3125})
    progress.on_log(None, state, None, logs={"eval_loss": 0.5})  # an evaluation: no line
    state.global_step = 400
    progress.on_train_end(None, state, None)
    os.close(write)
    lines = os.read(read, 4096).decode().splitlines()
    os.close(read)
    assert len(lines) == 2, lines
    assert lines[0].startswith("  finetune ner/gru/full: seed 42, step 100/400, loss 0.3125, at most ")
    assert lines[1].startswith("  finetune ner/gru/full: seed 42 trained: 400 steps in ")
    assert capsys.readouterr() == ("", "")  # stdout and stderr (the log) get none of it


def test_without_a_descriptor_nothing_is_written(monkeypatch, capsys):
    monkeypatch.delenv(console.FD_ENV, raising=False)
    console.say("anything")
    monkeypatch.setenv(console.FD_ENV, "987")  # not open: a command run by hand with the variable set
    console.say("anything")
    assert capsys.readouterr() == ("", "")


def test_durations_read_as_a_person_writes_them():
    assert [console.duration(s) for s in (42, 185, 3725)] == ["42s", "3m05s", "1h02m"]
