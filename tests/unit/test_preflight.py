"""`scratchlm check` runs every check that needs no training: a set-up whose first job would fail
(no CUDA for `device: cuda`, a data file not laid out yet, a column the spec names but the file
lacks) fails here, in the stage's own one line; what is allowed but probably not meant (a
tokenizer or LM corpus sharing no text with a task) is a warning."""

import pytest
import yaml

from conftest import DEFAULT_PARAMS
from scratchlm import cli, presets


def write(workdir, p: dict) -> None:
    (workdir / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def check(capsys) -> tuple[int, str, str]:
    code = cli.main(["check"])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def default(workdir) -> dict:
    return yaml.safe_load(DEFAULT_PARAMS.read_text())


def test_the_default_is_valid_without_a_warning(workdir, default, capsys):
    write(workdir, default)
    code, out, err = check(capsys)
    assert code == 0 and out.startswith("params.yaml: valid") and err == ""


def test_cuda_asked_for_where_there_is_none(workdir, default, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    write(workdir, {**default, "device": "cuda"})
    code, _, err = check(capsys)
    assert code == 1 and err == ("scratchlm: error: params.yaml: device = 'cuda' but no CUDA device is visible; set "
                                 "device: auto or cpu\n")


def test_a_preset_whose_files_are_not_laid_out_yet(workdir, default, capsys):
    presets.merge(default, yaml.safe_load((presets.PRESETS_DIR / "real-cpu.yaml").read_text()))
    write(workdir, default)
    code, _, err = check(capsys)
    assert code == 1 and err.count("\n") == 1
    assert "data.datasets.conll2003.files.train = 'data/external/conll2003/train.txt': file not found" in err


def test_a_column_the_file_lacks_is_named_at_its_line(workdir, default, capsys):
    (workdir / "data/external").mkdir(parents=True)
    (workdir / "data/external/reviews.csv").write_text("review,stars\nfine film,pos\n" * 3)
    default["data"]["datasets"]["reviews"] = {"source": "local", "kind": "classification",
                                              "files": {"train": "data/external/reviews.csv"}}
    default["tasks"]["sentiment"]["dataset"] = "reviews"
    write(workdir, default)
    code, _, err = check(capsys)
    assert code == 1 and err == ("scratchlm: error: data/external/reviews.csv:2: no column 'text' (has: review, "
                                 "stars); map it in data.datasets.reviews.columns\n")


def test_a_tokenizer_corpus_sharing_no_text_with_a_task_is_a_warning(workdir, default, capsys):
    """The README's own-data example as it was: the user's CoNLL files, the tokenizer and the LM left
    on the synthetic corpus."""
    (workdir / "data/external").mkdir(parents=True)
    (workdir / "data/external/train.txt").write_text("EU B-ORG\nrejects O\n\nPeter B-PER\n\n")
    default["data"]["datasets"]["conll"] = {"source": "local", "kind": "ner",
                                            "files": {"train": "data/external/train.txt"}}
    default["tasks"]["ner"]["dataset"] = "conll"
    write(workdir, default)
    code, out, err = check(capsys)
    assert code == 0 and out.startswith("params.yaml: valid")
    assert err.splitlines() == [
        f"scratchlm: warning: params.yaml: {key} = 'corpus' shares no text with task ner's dataset 'conll': point it "
        f"at a dataset (or a mix) that holds the task's training text" for key in ("tokenizer.corpus",
                                                                                   "pretrain.corpus")]


def test_the_readme_own_data_example_validates_without_a_warning(default):
    """The example a user copies: their CoNLL files, and the tokenizer and LMs on that text."""
    from conftest import ROOT
    from scratchlm import checks, params

    text = (ROOT / "README.md").read_text().split("## Your own data", 1)[1]
    example = yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    presets.merge(default, example)
    default["tasks"] = {"ner": example["tasks"]["ner"]}
    default["finetune"]["prompting"]["tasks"], default["finetune"]["data_efficiency"]["tasks"] = [], []
    p = params.validate(default)
    assert checks.warnings(p) == []
