rule pretrain:
    input:
        src(*TRAIN_SRC, "models/bert.py", "pretrain.py"),
        "models/tokenizer",
        f"data/blocks/{P['pretrain']['corpus']}",
    output:
        directory("models/pretrain/{model}"),
        "results/timing/pretrain/{model}.json",
        "results/pretrain/{model}/metrics.json",
        directory("results/pretrain/{model}/plots"),
        "results/pretrain/{model}/samples.md",
    params:
        seed=P["seed"],
        device=P["device"],
        precision=P["precision"],
        processes=P["processes"],
        spec=lambda w: P["pretrain"]["models"][w.model],
        training=P["pretrain"]["training"],
    log:
        "logs/pretrain/{model}.log",
    threads: TRAIN_THREADS
    resources:
        gpu=GPU,
    shell:
        "OMP_NUM_THREADS={threads} python -m scratchlm pretrain --model {wildcards.model} > {log} 2>&1"
