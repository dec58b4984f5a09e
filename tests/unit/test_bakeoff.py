"""The bake-off's reader (benchmarks/bakeoff.py) on a constructed run: its params are the real-cpu
preset with the bake-off's overlay, its results files are written here. Nothing trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bakeoff
from conftest import ROOT
from scratchlm.errors import ScratchError
from scratchlm.params import load

MINUTES = {"gru": 9.5, "lstm": 10.0, "bert": 10.5}
VALIDATION = {"gru": [0.80, 0.82, 0.81], "lstm": [0.84, 0.85, 0.86], "bert": [0.70, 0.72, 0.71]}


def test_difference_is_welchs_interval():
    # a hand count: variances 1/3 each over 3 seeds, se sqrt(2/3), Welch's dof 4, t(0.975, 4) 2.7764
    d = bakeoff.difference([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert d["difference"] == -1.0
    assert d["low"] == pytest.approx(-1 - 2.7764 * (2 / 3) ** 0.5, abs=1e-3)
    assert d["high"] == pytest.approx(-1 + 2.7764 * (2 / 3) ** 0.5, abs=1e-3)
    assert bakeoff.difference([1.0, 1.0], [0.5, 0.5]) == {"difference": 0.5, "low": 0.5, "high": 0.5}


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A finished bake-off as its files lie: params (the overlay applied), pretraining metrics and
    timing, each seed's validation curve and test score."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "workflow").mkdir()
    (tmp_path / "workflow/presets").symlink_to(ROOT / "workflow/presets")
    _write(tmp_path / "params.yaml", (ROOT / "params.yaml").read_text(encoding="utf-8"))
    bakeoff.apply("sst2", "params.yaml")
    for model, minutes in MINUTES.items():
        _write(tmp_path / f"results/pretrain/{model}/seed42/metrics.json",
               {"objective": "masked" if model == "bert" else "causal", "tokens": 5_000_000, "steps": 1000,
                "val_perplexity": 300.0, "unigram_perplexity": 1700.0, "parameters": 1})
        _write(tmp_path / f"results/timing/pretrain/{model}/seed42.json",
               {"seconds": minutes * 60, "tokens_per_second": 8000.0})
        run = tmp_path / f"results/finetune/sst2/{model}/full"
        _write(run / "metrics.json", {"lr": 0.002, "steps": 900, "selected_epoch": 1.5, "improving_seeds": 0})
        for seed, best in enumerate(VALIDATION[model], start=1):
            _write(run / f"plots/seed{seed}/eval/accuracy.tsv", f"step\taccuracy\n500\t{best - 0.05}\n1000\t{best}\n"
                                                                 f"1500\t{best - 0.01}\n")
        _write(tmp_path / f"results/details/sst2/{model}/full.json",
               {"seeds": {str(s): {"accuracy": v - 0.01} for s, v in enumerate(VALIDATION[model], start=1)}})
    return tmp_path


def test_apply_layers_the_overlay_over_the_real_cpu_preset(run_dir):
    params = load(run_dir / "params.yaml")
    models = params["pretrain"]["models"]
    assert set(models) == {"gru", "lstm", "bert"} and "conll2003" not in params["tasks"]
    assert models["lstm"]["cell"] == "lstm" and models["lstm"]["training"]["max_steps"] > 0  # the preset's, capped
    # as measured: the full softmax, the 22,000 reviews the preset had then
    assert models["lstm"]["sampled_softmax"] == 0
    assert params["data"]["datasets"]["text"]["parts"]["imdb"]["sample"] == {"train": 22000}
    assert params["finetune"]["methods"] == ["full"] and set(params["finetune"]["overrides"]) == set(models)
    assert "full" not in params["tasks"]["sst2"]["method_overrides"]  # each model's rate is its own


def test_each_task_has_its_own_half_with_its_own_rates(run_dir):
    halves = {}
    for task in bakeoff.TASKS:
        _write(run_dir / "params.yaml", (ROOT / "params.yaml").read_text(encoding="utf-8"))
        bakeoff.apply(task, "params.yaml")
        params = load(run_dir / "params.yaml")
        assert list(params["tasks"]) == [task] and "full" not in params["tasks"][task]["method_overrides"]
        assert set(params["finetune"]["overrides"]) == set(params["pretrain"]["models"])
        halves[task] = params
    assert halves["conll2003"]["tasks"]["conll2003"]["training"]["epochs"] == 12  # the preset's protocol
    assert halves["sst2"]["pretrain"] == halves["conll2003"]["pretrain"]  # the same LMs for both
    with pytest.raises(ScratchError, match="no task 'imdb' .*sst2, conll2003"):
        bakeoff.apply("imdb", "params.yaml")


def test_collect_reads_each_seeds_selected_score_and_ranks_on_validation(run_dir):
    found = bakeoff.collect(run_dir, "sst2")
    lstm = found["models"]["lstm"]
    assert lstm["full"]["val_seeds"] == {1: 0.84, 2: 0.85, 3: 0.86}  # the best point of each curve
    assert lstm["full"]["val_mean"] == pytest.approx(0.85) and lstm["full"]["val_std"] == pytest.approx(0.01)
    assert lstm["full"]["test_mean"] == pytest.approx(0.84)
    assert lstm["pretraining"]["minutes"] == 10.0 and "scratch" not in lstm
    assert found["validation_differences"]["lstm - bert"]["difference"] == pytest.approx(0.14)
    assert found["validation_differences"]["lstm - bert"]["low"] > 0  # shown
    assert found["validation_differences"]["lstm - gru"]["low"] > 0
    points = {model: rest for _, model, *rest in bakeoff.rows(found)}  # `full` at its minutes (no scratch here)
    assert points == {m: [MINUTES[m], pytest.approx(sum(v) / 3), pytest.approx(0.01)] for m, v in VALIDATION.items()}


def test_main_writes_the_json_and_the_figure(run_dir, capsys):
    bakeoff.main(["--repo", str(run_dir), "--task", "sst2", "--out", str(run_dir / "out")])
    assert json.loads((run_dir / "out/sst2.json").read_text())["metric"] == "accuracy"
    assert (run_dir / "out/sst2.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "| lstm | 10.0 | 5.00M |" in printed and "lstm - bert: +14.00 points" in printed


def test_the_combined_figure_has_a_panel_per_task_read(run_dir, monkeypatch):
    out = run_dir / "out"
    drawn = []
    monkeypatch.setattr(bakeoff.figures, "score_by_budget", lambda rows, names, path: drawn.append((rows, names)))
    bakeoff.main(["--repo", str(run_dir), "--task", "sst2", "--out", str(out)])
    assert drawn[-1][1] == {"sst2": "accuracy"}  # one task read so far: one panel
    other = json.loads((out / "sst2.json").read_text()) | {"task": "conll2003", "metric": "entity_f1"}
    (out / "conll2003.json").write_text(json.dumps(other))
    bakeoff.combined_figure(out)
    rows, names = drawn[-1]
    assert names == {"sst2": "accuracy", "conll2003": "entity_f1"}
    assert {r[0] for r in rows} == {"sst2", "conll2003"} and len(rows) == 2 * len(MINUTES)


def test_an_unfinished_run_or_an_unknown_task_is_one_clear_line(run_dir):
    with pytest.raises(ScratchError, match="task 'imdb' is not in .*its tasks: sst2"):
        bakeoff.collect(run_dir, "imdb")
    (run_dir / "results/pretrain/bert/seed42/metrics.json").unlink()
    with pytest.raises(ScratchError, match="no pretraining results for bert .*snakemake --cores all") as e:
        bakeoff.collect(run_dir, "sst2")
    assert "\n" not in str(e.value)


def test_main_says_it_in_one_line_and_exits_2(run_dir, capsys):
    with pytest.raises(SystemExit) as e:
        bakeoff.main(["--repo", str(run_dir), "--task", "imdb"])
    assert e.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit) as e:
        bakeoff.main(["--apply", "--task", "imdb"])
    assert e.value.code == 2 and "no task 'imdb'" in capsys.readouterr().err


def test_a_missing_overlay_file_is_named(tmp_path):
    from scratchlm import presets

    with pytest.raises(ScratchError, match="overlay 'bake-off': .*absent.yaml not found"):
        presets.apply("bake-off", str(tmp_path / "params.yaml"), file=tmp_path / "absent.yaml")
