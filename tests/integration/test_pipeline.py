"""The real `snakemake` and the real `dvc` on the tiny preset, in a temporary copy of the
repository: a full run, a no-op rerun, an experiment that changes a fine-tuning knob, the
sync after DVC-side work, and the one-line errors. Marked slow: a few minutes in all."""

import json
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT, env, git_commit, run, tiny_copy
from scratchlm.frontends import planned

pytestmark = pytest.mark.slow


def said(proc) -> str:
    return proc.stdout + proc.stderr


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def tiny_repo(tiny_run):
    return tiny_run[0]


def test_snakemake_runs_every_stage_and_records_them_in_dvc_lock(tiny_repo):
    assert (tiny_repo / "results/report.md").exists()
    for method in ("full", "scratch"):
        m = json.loads((tiny_repo / f"results/metrics/sentiment/gru/{method}.json").read_text())
        assert 0.0 <= m["accuracy"] <= 1.0
    lock = (tiny_repo / "dvc.lock").read_text()
    for stage in ("data@sentiment", "tokenizer", "encode@sentiment", "pack", "pretrain@gru-42",
                  "finetune@sentiment-gru-full", "evaluate@sentiment-gru-scratch", "report"):
        assert f"  {stage}:\n" in lock


def test_second_run_does_nothing_and_dvc_agrees(tiny_repo):
    assert "Nothing to be done" in said(run(["snakemake", "--cores", "2"], tiny_repo))
    assert "Data and pipelines are up to date" in said(run(["dvc", "status"], tiny_repo))
    assert ran_stages(said(run(["dvc", "repro"], tiny_repo))) == set()


def assert_both_front_ends_plan(repo, expected: set[str]) -> None:
    """DVC finds exactly `expected` out of date; Snakemake plans those and, for no other reason than
    their new outputs, the jobs downstream of them (it names the edit as the reason only where no
    upstream job reruns too; downstream of one it says "Input files updated by another job")."""
    assert set(json.loads(run(["dvc", "status", "--json"], repo).stdout)) == expected
    plan = planned(said(run(["snakemake", "-n", "-q", "host"], repo)))  # -q host: with the reasons
    assert expected <= set(plan), expected - set(plan)
    for job, reason in plan.items():
        assert (job in expected) or ("Updated input files" not in reason and "updated by another job" in reason
                                     and "Params have changed" not in reason), (job, reason)


@pytest.mark.parametrize("module", ["ulmfit.py", "tokenization.py", "models/bert.py", "sources/synthetic.py",
                                    "stages/report.py"])
def test_changing_a_module_outdates_exactly_the_jobs_that_run_it(tiny_repo, module):
    """Code dependencies come from the import graph, and a data job's from its dataset's source:
    edit one module, and both front ends find out of date exactly the jobs whose command runs it
    (the generators: the synthetic datasets' data jobs; the report's module: the report)."""
    import os

    from scratchlm import dag, params

    path = tiny_repo / "src/scratchlm" / module
    text, stat = path.read_text(), path.stat()
    p = params.load(tiny_repo / "params.yaml")
    expected = {j.dvc_stage for j in dag.jobs(p) if f"src/scratchlm/{module}" in dag.code(p, j)}
    assert expected
    if module == "stages/report.py":
        assert expected == {"report"}
    if module == "sources/synthetic.py":
        assert expected == {"data@sentiment", "data@ner", "data@corpus"}
    try:
        path.write_text(text + "\n# an edit\n")
        assert_both_front_ends_plan(tiny_repo, expected)
    finally:
        path.write_text(text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "Nothing to be done" in said(run(["snakemake", "-n"], tiny_repo))


def test_changing_a_schema_default_outdates_the_same_jobs_in_both_front_ends(tiny_repo):
    """A default the tiny params leave to the schema (a task head's dropout): once `scratchlm dag
    --write` has regenerated the defaults file, DVC and Snakemake find the same jobs out of date,
    those that read tasks.<task> whole (fine-tuning, the report), and no other."""
    from scratchlm import dag, params

    schema = tiny_repo / "workflow/schemas/params.schema.yaml"
    text = schema.read_text()
    line = "head_dropout: {type: number, minimum: 0, exclusiveMaximum: 1, default: 0.1,"
    assert line in text
    raw = params.read_yaml(tiny_repo / "params.yaml")
    assert not [t for t in raw["tasks"].values() if "head_dropout" in (t.get("head") or {})]  # left to the default
    p = params.load(tiny_repo / "params.yaml")
    expected = {j.dvc_stage for j in dag.jobs(p) if j.stage in ("finetune", "report")}
    def write_dag():  # the copy's own package (the installed one is the repository the tests run from)
        proc = subprocess.run([sys.executable, "-m", "scratchlm", "dag", "--write"], cwd=tiny_repo, text=True,
                              env={**env(), "PYTHONPATH": str(tiny_repo / "src")}, capture_output=True)
        assert proc.returncode == 0, proc.stderr

    try:
        schema.write_text(text.replace(line, line.replace("default: 0.1", "default: 0.2")))
        write_dag()
        changed = run(["git", "status", "--porcelain"], tiny_repo).stdout
        assert "workflow/schemas/defaults.yaml" in changed and "dvc.yaml" not in changed  # the keys stay
        assert_both_front_ends_plan(tiny_repo, expected)
    finally:
        schema.write_text(text)
        write_dag()
    assert "Nothing to be done" in said(run(["snakemake", "-n"], tiny_repo))
    assert "Data and pipelines are up to date" in said(run(["dvc", "status"], tiny_repo))


def test_snakemake_report_builds(tiny_repo):
    run(["snakemake", "--report", "snakemake-report.html"], tiny_repo)
    page = (tiny_repo / "snakemake-report.html").read_text(errors="replace")
    assert len(page) > 10_000 and "scratchlm" in page


def test_snakemake_config_override_is_refused(tiny_repo):
    proc = run(["snakemake", "-n", "--config", "seed=1"], tiny_repo, check=False)
    assert proc.returncode != 0
    assert "overrides are refused" in said(proc)
    assert "dvc exp run -S" in said(proc)


def test_bad_param_stops_both_front_ends_with_one_line(tiny_repo):
    params = tiny_repo / "params.yaml"
    good = params.read_text()
    params.write_text(good.replace("device: auto", "device: gpu"))
    try:
        proc = run(["snakemake", "-n"], tiny_repo, check=False)
        assert proc.returncode != 0
        assert "params.yaml: device = 'gpu' is not allowed (allowed: auto, cpu, cuda)" in said(proc)
        proc = run(["python", "-m", "scratchlm", "report"], tiny_repo, check=False)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "device = 'gpu'" in proc.stderr
    finally:
        params.write_text(good)


def test_the_console_has_a_line_per_job_and_the_training_jobs_progress(tiny_repo):
    """Snakemake's console on the tiny run: each job's one-line message, not its block of inputs
    (the report's hundreds of result files) nor the reasons; each training job's own lines."""
    console = (tiny_repo.parent / "console.txt").read_text()
    jobs = re.findall(r"^Job \d+: (\w+)(?: (\S+))? \(log: logs/\S+\.log\)$", console, flags=re.M)
    assert len(jobs) == len(planned(console)) >= 40, console[-3000:]
    assert "results/metrics/" not in console and "Reason:" not in console and "Snakemake version" not in console
    trained = [(stage, job) for stage, job in jobs if stage in ("pretrain", "adapt", "finetune")
               and not job.endswith("/prompt")]  # zero-shot: nothing to train
    for stage, job in trained:
        assert re.search(rf"^  {stage} {re.escape(job)}: seed \d+ trained: \d+ steps in ", console, flags=re.M), job
    assert len(console) < 15_000, len(console)  # 92 KB before: every input of every job, twice for the report


def test_a_shared_value_a_model_pins_reruns_none_of_its_runs_in_either_front_end(tiny_repo):
    """`finetune.training.lr` changed, which the tiny preset's `finetune.overrides.bert.lr` pins for
    bert: DVC reruns the settings stages (one params list per matrix stage: they track the section
    whole), bert's file keeps its bytes and date, and both front ends then find out of date the gru
    runs that train with it: no bert run, no prompt run (it trains with finetune.prompting). Back to
    the first value through Snakemake, DVC agrees at once: Snakemake records settings@bert."""
    import yaml

    from scratchlm import dag, params

    p = params.load(tiny_repo / "params.yaml")
    assert p["finetune"]["overrides"]["bert"]["lr"] != p["finetune"]["training"]["lr"]
    file, text = tiny_repo / "params.yaml", (tiny_repo / "params.yaml").read_text()
    bert = tiny_repo / "results/settings/finetune/bert.json"
    kept = bert.stat().st_mtime_ns
    trains = {j.dvc_stage for j in dag.jobs(p, "finetune")
              if j.wildcards["model"] == "gru" and dag.kind_of(j).training == "finetune"}
    assert trains and not any("prompt" in job for job in trains)
    settings = {j.dvc_stage for j in dag.jobs(p, "settings")}
    try:
        changed = yaml.safe_load(text)
        changed["finetune"]["training"]["lr"] = 0.003
        file.write_text(yaml.safe_dump(changed, sort_keys=False))
        assert set(json.loads(run(["dvc", "status", "--json"], tiny_repo).stdout)) == settings
        plan = planned(said(run(["snakemake", "-n"], tiny_repo)))
        assert "settings@gru" in plan and not [j for j in plan if "bert" in j or "prompt" in j], plan
        assert ran_stages(said(run(["dvc", "repro", "--single-item", *sorted(settings)], tiny_repo))) == settings
        assert bert.stat().st_mtime_ns == kept  # the same bytes, left alone: Snakemake sees nothing new either
        assert set(json.loads(run(["dvc", "status", "--json"], tiny_repo).stdout)) == trains
        # Snakemake plans them too (and nothing of bert's): its records of what DVC reran are gone
        plan = planned(said(run(["snakemake", "-n"], tiny_repo)))
        downstream = {j for j in plan if j.startswith(("evaluate", "report"))}
        assert trains <= set(plan) <= trains | {"settings@gru"} | downstream, plan
        assert not [j for j in plan if "bert" in j or "prompt" in j], plan
    finally:
        file.write_text(text)
    # back to the first lr, through Snakemake: it reruns the gru runs, not settings@bert, which DVC now
    # calls stale (its lock holds lr 0.003) and which Snakemake's run records as settled, the same bytes
    assert "settings@bert" in json.loads(run(["dvc", "status", "--json"], tiny_repo).stdout)
    ran = planned(said(run(["snakemake", "--cores", "2"], tiny_repo)))
    assert "settings@gru" in ran and not [j for j in ran if "bert" in j or "prompt" in j], ran
    assert "Nothing to be done" in said(run(["snakemake", "-n"], tiny_repo))
    assert "Data and pipelines are up to date" in said(run(["dvc", "status"], tiny_repo))
    assert bert.stat().st_mtime_ns == kept


def test_queued_experiment_reruns_downstream_only_and_compares_across_commits(tiny_repo):
    """`dvc exp run --queue` + `dvc queue start`; then the experiment, applied and committed, is
    a second commit for `dvc metrics diff`, `dvc plots diff` and `scratchlm compare`."""
    import time

    git_commit(tiny_repo, "tiny run")
    # a knob of one kind of run (LoRA's rank): its runs and the report rerun, nothing else does
    run(["dvc", "exp", "run", "--queue", "-S", "finetune.lora.r=4", "-n", "lower-rank"], tiny_repo)
    assert "lower-rank" in said(run(["dvc", "queue", "status"], tiny_repo))
    run(["dvc", "queue", "start", "--jobs", "1"], tiny_repo)
    deadline = time.time() + 900
    while time.time() < deadline:
        status = said(run(["dvc", "queue", "status"], tiny_repo))
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(5)
    assert re.search(r"lower-rank\s.*Success", status), status

    stages = ran_stages(said(run(["dvc", "queue", "logs", "lower-rank"], tiny_repo)))
    assert stages == {"finetune_lora@sentiment-bert", "finetune_lora@ner-bert", "evaluate_lora@sentiment-bert",
                      "evaluate_lora@ner-bert", "report"}, stages
    shown = json.loads(run(["dvc", "exp", "show", "--json"], tiny_repo).stdout)
    exp = next(e for row in shown for e in (row.get("experiments") or []) if e.get("name") == "lower-rank")
    data = exp["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["finetune"]["lora"]["r"] == 4
    assert 0.0 <= data["metrics"]["results/metrics/ner/bert/lora.json"]["data"]["entity_f1"] <= 1.0

    # README's `dvc exp show`, as typed there, at 120 columns: the experiment and the param it changed
    typed = next(line.split("#")[0].strip() for line in (ROOT / "README.md").read_text().splitlines()
                 if line.startswith("dvc exp show"))
    narrow = subprocess.run([*shlex.split(typed), "--no-pager"], cwd=tiny_repo, env={**env(), "COLUMNS": "120"},
                            capture_output=True, text=True)
    table = narrow.stdout.splitlines()
    assert narrow.returncode == 0 and max(len(line) for line in table) <= 120, narrow.stdout
    assert "…" not in narrow.stdout and "lower-rank" in narrow.stdout and "finetune.lora.r" in narrow.stdout
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], tiny_repo).stdout)
    files = {f for rev in shown.values() for f in rev["data"]}  # test metrics and the headline: no val_loss
    assert files and all(f.startswith("results/metrics/") or f == "results/headline.json" for f in files), files

    named = run(["scratchlm", "compare", "HEAD", "lower-rank"], tiny_repo)  # an experiment by its name
    assert "(lower-rank)" in named.stdout.splitlines()[0] and "presets" not in named.stderr, named
    run(["dvc", "exp", "apply", "lower-rank"], tiny_repo)
    # the report built inside the queued `dvc exp run` holds this run beside the committed baseline
    report = (tiny_repo / "results/report.md").read_text()
    across = report.split("## Across revisions and experiments", 1)[1].split("\n## ", 1)[0]
    assert "| run metric | this run |" in across, across
    assert re.search(r"\| ner/bert/lora entity_f1 \| [0-9.]+ \| [0-9.]+ \|", across), across
    git_commit(tiny_repo, "the lower-rank experiment")
    diff = said(run(["dvc", "metrics", "diff", "HEAD~1", "HEAD", "--all"], tiny_repo))
    assert "results/metrics/ner/bert/lora.json" in diff and "entity_f1" in diff
    out = tiny_repo.parent / "plots-diff"  # rendered images go here, not into the repository
    plots = json.loads(run(["dvc", "plots", "diff", "HEAD~1", "HEAD", "--json", "-o", str(out)], tiny_repo).stdout)
    names = set(plots["data"])  # the plots a person reads: one chart of every curve, the report's figures
    assert names == {"results/plots/curves.json"} | {f"results/figures/{f.name}" for f in
                                                     (tiny_repo / "results/figures").glob("*.png")}, names
    chart = plots["data"]["results/plots/curves.json"][0]["content"]
    assert chart["title"]["text"].startswith("Validation curves") and chart["facet"]["row"]["field"] == "panel"
    assert {row["rev"] for row in chart["data"]["values"]} == {"HEAD~1", "HEAD"}

    table = run(["scratchlm", "compare", "HEAD~1", "HEAD"], tiny_repo).stdout
    header, _, *rows = table.splitlines()
    # the metric column, the two commits, and the experiment that hangs off the first
    assert header.count("|") == 5 and "(lower-rank)" in header, header
    row = next(r for r in rows if r.startswith("| ner/bert/lora entity_f1 |"))
    assert len([c for c in row.split("|") if c.strip()]) == 4
    csv_text = run(["scratchlm", "compare", "HEAD", "--format", "csv"], tiny_repo).stdout
    assert csv_text.startswith("revision,") and "sentiment/gru/full accuracy" in csv_text
    run(["scratchlm", "sync"], tiny_repo)  # DVC restored files: let Snakemake catch up


def test_dvc_plots_pages_render_offline(tiny_repo, tmp_path):
    """`dvc plots show` writes its page from workflow/plots/offline.html (set in .dvc/config): vega,
    vega-lite and vega-embed inline, so no element of the page loads anything from the network."""
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], tiny_repo)
    page = (tmp_path / "plots" / "index.html").read_text(encoding="utf-8")
    assert "vegaEmbed(" in page and page.count("<script>") >= 3
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", page)


def test_sync_makes_snakemake_agree_after_dvc_work(tiny_repo):
    run(["scratchlm", "sync"], tiny_repo)
    assert "Nothing to be done" in said(run(["snakemake", "-n"], tiny_repo))


def test_dvc_repro_from_scratch_leaves_nothing_for_snakemake(tmp_path):
    # the agreement of the two front ends does not need every task, model and kind of run
    repo = tiny_copy(tmp_path / "repo", smaller=True)
    assert "report" in ran_stages(said(run(["dvc", "repro"], repo)))
    assert "Nothing to be done" in said(run(["snakemake", "-n"], repo))


def test_a_stage_run_by_hand_then_a_changed_param_reruns_in_snakemake_as_in_dvc(tmp_path):
    """The newcomer's sequence: one stage by hand (as docs/usage.md shows), a data param changed,
    then `snakemake`. Snakemake had no record of the job ("missing provenance") and reused its
    output silently while DVC called it changed; the job's params stamp now makes both rerun it."""
    import yaml

    repo = tiny_copy(tmp_path / "repo", smaller=True)
    run(["scratchlm", "data", "--dataset", "sentiment"], repo)
    p = yaml.safe_load((repo / "params.yaml").read_text())
    p["data"]["datasets"]["sentiment"]["train"] = 150
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    assert "data@sentiment" in json.loads(run(["dvc", "status", "--json"], repo).stdout)
    plan = planned(said(run(["snakemake", "-n", "-q", "host"], repo)))  # -q host: with the reasons
    assert "data@sentiment" in plan and ".scratchlm/params/data@sentiment.json" in plan["data@sentiment"], plan
