"""What a hostile or careless params file, checkpoint or dataset could do: weights load only
through safetensors (or torch.load with weights_only=True), remote code never runs, and no param
value reaches a shell command unchecked."""

import re
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from scratchlm import params
from scratchlm.errors import ScratchError

SOURCES = sorted((ROOT / "src/scratchlm").rglob("*.py"))


def test_lint_bans_unpickling_loads(tmp_path):
    """torch.load and pickle.load run code from the file they read: ruff's banned-API rule
    (pyproject.toml, run by `make lint` and CI) refuses them anywhere in the project."""
    snippet = tmp_path / "snippet.py"
    snippet.write_text("import pickle\n\nimport torch\n\ntorch.load('w.pt')\npickle.load(open('w.pkl', 'rb'))\n")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--config", str(ROOT / "pyproject.toml"),
                           "--output-format", "concise", "--no-cache", str(snippet)], capture_output=True, text=True)
    assert proc.returncode == 1
    found = [line for line in proc.stdout.splitlines() if ": TID251 " in line]
    assert len(found) == 2 and "`torch.load` is banned" in found[0] and "`pickle.load` is banned" in found[1]


def test_remote_code_is_never_trusted():
    for path in SOURCES:
        assert not re.search(r"trust_remote_code\s*=\s*True", path.read_text()), path.name


def test_commands_interpolate_only_validated_names():
    """dvc.yaml commands take `${key}`/`${item.*}`: the names of datasets, tasks, models and
    methods (a schema pattern: lower-case identifiers), fractions, shots and pretraining seeds (numbers)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    cmds = [stage.get("cmd") or stage["do"]["cmd"] for stage in stages.values()]  # foreach stages: under do
    used = {m for cmd in cmds for m in re.findall(r"\$\{([^}]*)\}", cmd)}
    assert used <= {"key", "item.task", "item.model", "item.method", "item.fraction", "item.shots",
                    "item.seed"}, used


@pytest.mark.parametrize("where", ["task", "dataset", "model"])
def test_hostile_names_are_refused_before_any_command(params_copy, where):
    hostile = "x; rm -rf ~ #"
    if where == "task":
        params_copy["tasks"][hostile] = params_copy["tasks"]["sentiment"]
    elif where == "dataset":
        params_copy["data"]["datasets"][hostile] = params_copy["data"]["datasets"]["sentiment"]
    else:
        params_copy["pretrain"]["models"][hostile] = params_copy["pretrain"]["models"]["gru"]
    with pytest.raises(ScratchError, match="lower-case identifier"):
        params.validate(params_copy)


def test_hostile_method_and_fraction_are_refused(params_copy):
    params_copy["finetune"]["methods"] = ["full; reboot"]
    with pytest.raises(ScratchError, match="is not allowed"):
        params.validate(params_copy)
    params_copy["finetune"]["methods"] = ["full"]
    params_copy["finetune"]["data_efficiency"]["fractions"] = ["0.1; reboot"]
    with pytest.raises(ScratchError, match="data_efficiency.fractions"):
        params.validate(params_copy)


def test_shell_commands_quote_nothing_from_free_text():
    """Free-text params (paths, titles) are read by the stage from params.yaml, never passed on a
    command line: no rule's shell or dvc.yaml cmd mentions them."""
    text = (ROOT / "dvc.yaml").read_text() + "".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk"))
    for free in ("files", "path", "title", "revision", "checkpoint"):
        assert not re.search(r"(cmd|shell):[^\n]*\b" + free + r"\b", text), free
