import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import DEFAULT_PARAMS, HUNG_AFTER_S, env
from scratchlm.atomic import atomic_path, read_json, write_json


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, is_dir=True) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("killed")
    assert (target / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp left behind

    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]


def test_atomic_file_and_json(tmp_path):
    path = tmp_path / "a" / "b.json"
    write_json(path, {"x": 1})
    assert read_json(path) == {"x": 1}
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    with pytest.raises(ValueError):
        with atomic_path(path) as tmp:
            tmp.write_text("{broken")
            raise ValueError
    assert read_json(path) == {"x": 1}


def test_record_lists_are_one_per_line(tmp_path):
    rows = [{"actual": "a", "predicted": "b"}, {"actual": "b", "predicted": "b"}]
    write_json(tmp_path / "rows.json", rows)
    assert read_json(tmp_path / "rows.json") == rows
    assert len((tmp_path / "rows.json").read_text().splitlines()) == 4
    write_json(tmp_path / "empty.json", [])
    assert read_json(tmp_path / "empty.json") == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_siblings_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead, live = _dead_pid(), os.getpid()
    names = [f".out.tmp-{dead}-abc", f".out.tmp-{dead}-old-abc", ".out.tmp-abc", f".out.tmp-{live}-abc",
             f".other.tmp-{dead}-abc"]
    for name in names:
        (tmp_path / name).mkdir()
    with atomic_path(tmp_path / "out", is_dir=True) as tmp:
        (tmp / "x").write_text("x")
    # the dead writer's (and an older version's, without a pid) are gone; a live one's and another output's stay
    kept = ["out", f".out.tmp-{live}-abc", f".other.tmp-{dead}-abc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_replacing_a_folder_leaves_no_sibling(tmp_path):
    for version in ("old", "new"):
        with atomic_path(tmp_path / "out", is_dir=True) as tmp:
            (tmp / "v").write_text(version)
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (tmp_path / "out" / "v").read_text() == "new"


# ---------------------------------------------------------------- a stage killed while it writes

def _hashes(folder: Path) -> dict:
    return {str(f.relative_to(folder)): hashlib.md5(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file()}


def _siblings(out: Path) -> list[Path]:
    return list(out.parent.glob(f".{out.name}.tmp-*"))


# `python -m scratchlm ARGV...`, which SIGKILLs itself when it opens the second Arrow file in the
# temp sibling named by argv[1]: one split written whole, the next begun (no race, no big data)
KILLED_MID_WRITE = """
import os, runpy, signal, sys
inside, arrows = sys.argv.pop(1), []
def hook(event, args):
    if event == "open" and inside in str(args[0]) and str(args[0]).endswith(".arrow") and "w" in str(args[1]):
        arrows.append(args[0])
        if len(arrows) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
runpy.run_module("scratchlm", run_name="__main__", alter_sys=True)
"""


def _kill_while_writing(argv: list[str], cwd: Path, out: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, f"{out.parent}/.{out.name}.tmp-", *argv], cwd=cwd,
                          env=env(), capture_output=True, text=True, timeout=HUNG_AFTER_S)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def test_killed_data_and_tokenize_stages_leave_nothing_half_written(tmp_path, monkeypatch):
    """SIGKILL mid-write: the output is still its complete previous version, the temp sibling left
    behind is hidden, and the next run removes it and writes the new version whole."""
    from datasets import load_from_disk

    from scratchlm import cli
    from scratchlm.params import read_yaml

    monkeypatch.chdir(tmp_path)
    p = read_yaml(DEFAULT_PARAMS)
    p["data"]["datasets"]["sentiment"].update(train=300, validation=50, test=50)
    p["tokenizer"].update(corpus="sentiment", vocab_size=400)
    Path("params.yaml").write_text(yaml.safe_dump(p))
    stages = {Path("data/raw/sentiment"): ["data", "--dataset", "sentiment"],
              Path("data/encoded/sentiment"): ["encode", "--task", "sentiment"]}
    for argv in (stages[Path("data/raw/sentiment")], ["tokenizer"], stages[Path("data/encoded/sentiment")]):
        assert cli.main(argv) == 0
    previous = {out: _hashes(out) for out in stages}

    p["seed"], p["encode"]["max_length"] = 7, 32  # each stage would now write a new version
    Path("params.yaml").write_text(yaml.safe_dump(p))
    for out, argv in stages.items():
        _kill_while_writing(argv, tmp_path, out)
        assert _hashes(out) == previous[out]
        [left] = _siblings(out)  # half-written: the first split whole, the next begun
        assert (left / "train").is_dir() and not (left / "test").exists()
    for out, argv in stages.items():
        assert cli.main(argv) == 0
        assert not _siblings(out)
        assert _hashes(out) != previous[out] and len(load_from_disk(str(out))["test"]) > 0


def test_resume_passes_snakemakes_options_on_and_other_commands_refuse_unknown_ones(monkeypatch, capsys):
    from scratchlm import cli, frontends

    seen = []
    monkeypatch.setattr(frontends, "resume", lambda args: seen.append(args.snakemake_args))
    assert cli.main(["resume", "--cores", "2", "-n"]) == 0 and cli.main(["resume"]) == 0
    assert seen == [["--cores", "2", "-n"], []]
    with pytest.raises(SystemExit):
        cli.main(["check", "--cores", "2"])
    assert "unrecognized arguments: --cores 2" in capsys.readouterr().err


def test_metrics_files_are_strict_json(tmp_path):
    """A bare NaN is not JSON: DVC's metrics diff showed a `val_loss nan nan nan` row for the
    zero-shot prompt, which has no validation loss. Writers refuse one; the committed results hold none."""
    import json

    from conftest import ROOT

    with pytest.raises(ValueError):
        write_json(tmp_path / "m.json", {"val_loss": float("nan")})

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    tracked = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    for name in [n for n in tracked if n.endswith(".json")]:
        json.loads((ROOT / name).read_text(), parse_constant=refuse)  # raises on NaN or Infinity, naming it
