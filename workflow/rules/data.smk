def local_files(w):
    """A local dataset's own files: Snakemake sees an edit in place, which the folder's mtime hides."""
    return [f for f in P["data"]["datasets"][w.dataset].get("files", {}).values() if f]


rule data:
    input:
        src("data.py", "synthetic.py", "readers.py", "hub.py", "iob.py"),
        "data/external",
        local_files,
    output:
        directory("data/raw/{dataset}"),
        "results/timing/data/{dataset}.json",
        "results/data/{dataset}.json",
    params:
        seed=P["seed"],
        spec=lambda w: P["data"]["datasets"][w.dataset],
    log:
        "logs/data/{dataset}.log",
    threads: 1
    shell:
        "python -m scratchlm data --dataset {wildcards.dataset} > {log} 2>&1"


rule tokenizer:
    input:
        src("tokenizer.py"),
        f"data/raw/{P['tokenizer']['corpus']}",
    output:
        directory("models/tokenizer"),
        "results/timing/tokenizer.json",
    params:
        spec=P["tokenizer"],
    log:
        "logs/tokenizer.log",
    threads: 1
    shell:
        "python -m scratchlm tokenizer > {log} 2>&1"


rule tokenize:
    input:
        src("tokenize.py"),
        lambda w: f"data/raw/{P['tasks'][w.task]['dataset']}",
        "models/tokenizer",
    output:
        directory("data/tokenized/{task}"),
        "results/timing/tokenize/{task}.json",
    params:
        task=lambda w: P["tasks"][w.task],
        spec=P["tokenize"],
    log:
        "logs/tokenize/{task}.log",
    threads: 1
    shell:
        "python -m scratchlm tokenize --task {wildcards.task} > {log} 2>&1"


rule pack:
    input:
        src("pack.py"),
        f"data/raw/{P['pretrain']['corpus']}",
        "models/tokenizer",
    output:
        directory(f"data/blocks/{P['pretrain']['corpus']}"),
        "results/timing/pack.json",
    params:
        spec=P["pack"],
    log:
        "logs/pack.log",
    threads: 1
    shell:
        "python -m scratchlm pack > {log} 2>&1"
