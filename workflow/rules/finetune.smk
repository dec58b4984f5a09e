# One fine-tuning run per `run` wildcard: a method (full, frozen, scratch, lora), or a method on a
# fraction of the training labels (full-0.1). workflow.Run maps it to the CLI and to DVC's name.
from scratchlm.workflow import Run


def run_of(w):
    return Run.parse(w.task, w.model, w.run)


def finetune_params(w):
    """The params a run reads (a change reruns it), as dvc.yaml lists them."""
    run = run_of(w)
    ft = P["finetune"]
    out = {"seed": P["seed"], "device": P["device"], "precision": P["precision"], "processes": P["processes"],
           "task": P["tasks"][w.task], "pooling": ft["pooling"], "training": ft["training"], "overrides": ft["overrides"]}
    if run.method == "lora":
        out["lora"] = ft["lora"]
    else:
        out["ulmfit"] = ft["ulmfit"]
    return out


rule finetune:
    input:
        src(*TRAIN_SRC, "finetune.py", "ulmfit.py", "metrics.py", "workflow.py"),
        "models/tokenizer",
        "models/pretrain/{model}",
        "data/tokenized/{task}",
    output:
        directory("models/finetune/{task}/{model}/{run}"),
        "results/timing/finetune/{task}/{model}/{run}.json",
        "results/finetune/{task}/{model}/{run}/metrics.json",
        directory("results/finetune/{task}/{model}/{run}/plots"),
    params:
        reads=finetune_params,
        args=lambda w: run_of(w).args(),
    log:
        "logs/finetune/{task}/{model}/{run}.log",
    threads: TRAIN_THREADS
    resources:
        gpu=GPU,
    shell:
        "OMP_NUM_THREADS={threads} python -m scratchlm finetune {params.args} > {log} 2>&1"


rule evaluate:
    input:
        src("evaluate.py", "metrics.py", "workflow.py"),
        "models/finetune/{task}/{model}/{run}",
        "results/finetune/{task}/{model}/{run}/metrics.json",
        "data/tokenized/{task}",
    output:
        "results/metrics/{task}/{model}/{run}.json",
        "results/details/{task}/{model}/{run}.json",
        "results/predictions/{task}/{model}/{run}.jsonl",
        "results/plots/confusion/{task}/{model}/{run}.json",
        "results/timing/evaluate/{task}/{model}/{run}.json",
    params:
        device=P["device"],
        spec=P["evaluate"],
        task=lambda w: P["tasks"][w.task],
        args=lambda w: run_of(w).args(),
    log:
        "logs/evaluate/{task}/{model}/{run}.log",
    threads: 1
    shell:
        "python -m scratchlm evaluate {params.args} > {log} 2>&1"
