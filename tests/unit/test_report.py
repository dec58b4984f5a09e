"""The report's sections that read results: published numbers beside the runs they stand against."""

from scratchlm.dag import Run
from scratchlm.published import BENCHMARKS
from scratchlm.stages.report import Figures, Result, label_counts, references, summary


def _result(score: float) -> Result:
    return Result({"accuracy": score, "accuracy_std": 0.01, "collapsed_seeds": 0, "seeds": 3},
                  {str(s): {"accuracy": score} for s in (1, 2, 3)})


def test_each_published_number_sits_beside_the_run_it_stands_against():
    params = {"tasks": {"sst2": {"type": "sequence-classification", "dataset": "sst2"}},
              "data": {"datasets": {"sst2": {"source": "local", "benchmark": "sst2"}}}}
    found = {Run("sst2", "lstm", "scratch"): _result(0.80), Run("sst2", "lstm", "full"): _result(0.85),
             Run("sst2", "lstm", "frozen"): _result(0.83), Run("sst2", "lstm", "full", 0.1): _result(0.90),
             Run("sst2", "lstm", "prompt"): _result(0.55), Run("sst2", "lstm", "pet", shots=16): _result(0.60),
             Run("sst2", "lstm", "full", shots=16): _result(0.58), Run("sst2", "lstm", "scratch", shots=16):
             _result(0.51)}
    rows = {line.split(" | ")[1]: line.split(" | ")[3] for line in references(params, found).splitlines()
            if line.startswith("| sst2 |")}
    by_kind = {ref.who: (ref.ours, ref.shots) for ref in BENCHMARKS["sst2"]}
    assert set(rows) == set(by_kind)  # every reference has a run of ours to stand against
    for who, ours in rows.items():
        kind = by_kind[who]
        expected = {("scratch", 0): "lstm/scratch: 80.00", ("pretrained", 0): "lstm/full: 85.00",  # not full-0.1
                    ("prompt", 0): "lstm/prompt: 55.00", ("pet", 16): "lstm/pet-16shot: 60.00",
                    ("full", 16): "lstm/full-16shot: 58.00"}[kind]
        assert ours.startswith(expected), (who, ours)


def test_no_published_numbers_for_data_that_is_no_benchmark():
    params = {"tasks": {"sentiment": {"type": "sequence-classification", "dataset": "sentiment"}},
              "data": {"datasets": {"sentiment": {"source": "synthetic"}}}}
    assert references(params, {Run("sentiment", "gru", "scratch"): _result(0.9)}) == ""


def _labelled(score: float, examples: int) -> Result:
    result = _result(score)
    result.metrics["train_examples"] = examples
    return result


def test_labels_per_class_draws_a_curve_only_where_there_are_few_shot_runs(tmp_path):
    params = {"tasks": {"sst2": {"type": "sequence-classification", "metric": "accuracy"}},
              "finetune": {"prompting": {"calibrate": "batch"}}}
    zero_shot = {Run("sst2", "lstm", "prompt"): _labelled(0.55, 0)}
    text = label_counts(params, zero_shot, Figures(tmp_path))
    assert "| sst2 | lstm | prompt | 0 (zero-shot) | 0 | accuracy 55.00" in text, text
    assert "no few-shot runs" in text and "label_counts.png" not in text and not list(tmp_path.iterdir())
    text = label_counts(params, {**zero_shot, Run("sst2", "lstm", "pet", shots=16): _labelled(0.60, 32)},
                        Figures(tmp_path))
    assert "| sst2 | lstm | pet | 16 | 32 | accuracy 60.00" in text and "(figures/label_counts.png)" in text
    assert (tmp_path / "label_counts.png").stat().st_size > 1000


def test_compare_says_when_the_columns_ran_different_presets():
    from scratchlm.compare import presets_note, table

    same = [{"revision": "main", "preset": "none", "a/b/full accuracy": 0.9},
            {"revision": "abc1234 (lr-up)", "preset": "none", "a/b/full accuracy": 0.8}]
    assert presets_note(same) is None
    mixed = [same[0], {**same[1], "preset": "tiny"}]
    assert presets_note(mixed) == ("compare: note: these were made with different presets (main: none; abc1234 "
                                   "(lr-up): tiny): their runs differ in data, models or budget, not only in what "
                                   "changed")
    assert "preset" not in table(mixed).splitlines()[2]  # the preset is said, not a metric row


def test_the_label_share_curve_gives_each_shares_gain_with_its_interval(tmp_path, monkeypatch):
    from scratchlm import bootstrap
    from scratchlm.stages import report

    params = {"tasks": {"sst2": {"type": "sequence-classification", "metric": "accuracy"}},
              "finetune": {"data_efficiency": {"tasks": ["sst2"], "models": ["lstm"], "methods": ["full", "scratch"]}}}
    found = {Run("sst2", "lstm", method, share): _labelled(score, int(1000 * share))
             for method, share, score in [("full", 0.01, 0.60), ("scratch", 0.01, 0.50), ("full", 0.1, 0.75),
                                          ("scratch", 0.1, 0.70), ("full", 1.0, 0.85), ("scratch", 1.0, 0.84)]}
    found[Run("sst2", "lstm", "frozen")] = _labelled(0.8, 1000)  # no control of its own kind: not a point
    # the interval is the bootstrap's (it reads the runs' test predictions): here, made up per share
    made_up = {0.01: (0.10, 0.04, 0.16), 0.1: (0.05, 0.01, 0.09), 1.0: (0.01, -0.01, 0.03)}
    monkeypatch.setattr(report, "interval", lambda run, control, metric: bootstrap.Interval(*made_up[run.fraction]))
    rows = report.share_gains(params, found)
    assert [(share, round(gain, 2), round(low, 2)) for _, _, share, gain, low, _ in rows] == [
        (0.01, 10.0, 4.0), (0.1, 5.0, 1.0), (1.0, 1.0, -1.0)]
    text = report.data_efficiency(params, found, Figures(tmp_path))
    assert "| sst2 | lstm | 1% | +10.00 | +4.00 to +16.00 |" in text and "| sst2 | lstm | 100% | +1.00 |" in text
    assert "(figures/label_share_gain.png)" in text and (tmp_path / "label_share_gain.png").stat().st_size > 1000


def test_the_test_table_shows_each_arms_rate_and_selected_epoch_and_none_for_a_zero_shot_prompt():
    params = {"tasks": {"sst2": {"type": "sequence-classification", "dataset": "sst2"}}}

    def run(lr: float, epoch: float, examples: int) -> Result:
        return Result({"accuracy": 0.8, "accuracy_std": 0.01, "macro_f1": 0.8, "collapsed_seeds": 0, "seeds": 3,
                       "train_examples": examples, "trainable_fraction": 1.0, "lr": lr, "selected_epoch": epoch},
                      {str(s): {"accuracy": 0.8} for s in (1, 2, 3)})

    table = summary(params, {Run("sst2", "lstm", "full"): run(0.002, 1.22, 100),
                             Run("sst2", "lstm", "scratch"): run(0.008, 3.178, 100),
                             Run("sst2", "lstm", "prompt"): run(0.0003, 0.0, 0)})
    rows = {line.split(" | ")[2]: line.split(" | ")[-2:] for line in table.splitlines() if line.startswith("| sst2 |")}
    assert rows == {"full": ["0.002", "1.22 |"], "scratch": ["0.008", "3.178 |"], "prompt": ["—", "— |"]}
