# Training: pretrain each language model; fine-tune each model on each task in each declared run
# (a method, LoRA, or a share of the labels: the `run` wildcard, see scratchlm.dag.Run); evaluate.


rule pretrain:
    input: code("pretrain"), inputs("pretrain")
    output: outputs("pretrain")
    params: reads=reads("pretrain")
    log: dag.log_template("pretrain")
    threads: TRAIN_THREADS
    resources: gpu=GPU
    shell: dag.snakemake_command("pretrain")


rule finetune:
    input: code("finetune"), inputs("finetune")
    output: outputs("finetune")
    params: reads=reads("finetune")
    log: dag.log_template("finetune")
    threads: TRAIN_THREADS
    resources: gpu=GPU
    shell: dag.snakemake_command("finetune")


rule evaluate:
    input: code("evaluate"), inputs("evaluate")
    output: outputs("evaluate")
    params: reads=reads("evaluate")
    log: dag.log_template("evaluate")
    threads: 1
    shell: dag.snakemake_command("evaluate")
