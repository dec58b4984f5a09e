rule finetune:
    input:
        src(*TRAIN_SRC, "finetune.py"),
        "models/tokenizer",
        "models/pretrain/{model}",
        "data/tokenized/{task}",
    output:
        directory("models/finetune/{task}/{model}/{method}"),
        "results/finetune/{task}/{model}/{method}/metrics.json",
        directory("results/finetune/{task}/{model}/{method}/plots"),
    params:
        seed=P["seed"],
        device=P["device"],
        task=lambda w: P["tasks"][w.task],
        pooling=P["finetune"]["pooling"],
        training=P["finetune"]["training"],
        overrides=P["finetune"]["overrides"],
    log:
        "logs/finetune/{task}/{model}/{method}.log",
    threads: TRAIN_THREADS
    resources:
        gpu=GPU,
    shell:
        "OMP_NUM_THREADS={threads} python -m scratchlm finetune"
        " --task {wildcards.task} --model {wildcards.model} --method {wildcards.method} > {log} 2>&1"


rule evaluate:
    input:
        src("evaluate.py"),
        "models/finetune/{task}/{model}/{method}",
        "results/finetune/{task}/{model}/{method}/metrics.json",
        "data/tokenized/{task}",
    output:
        "results/metrics/{task}/{model}/{method}.json",
        "results/predictions/{task}/{model}/{method}.jsonl",
        "results/plots/confusion/{task}/{model}/{method}.json",
    params:
        device=P["device"],
        spec=P["evaluate"],
        task=lambda w: P["tasks"][w.task],
    log:
        "logs/evaluate/{task}/{model}/{method}.log",
    threads: 1
    shell:
        "python -m scratchlm evaluate"
        " --task {wildcards.task} --model {wildcards.model} --method {wildcards.method} > {log} 2>&1"
