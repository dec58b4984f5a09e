# Training: pretrain each language model; adapt it to each task's text (ULMFiT's middle step);
# write each model's fine-tuning settings as its runs see them (its overrides applied);
# fine-tune each model on each task in each declared run (a method, LoRA, a share of the labels,
# or the adaptation ablation: the `run` wildcard, see scratchlm.dag.Run), every seed; evaluate.


rule pretrain:
    input: code("pretrain"), inputs("pretrain"), stamp("pretrain")
    output: outputs("pretrain")
    params: reads=reads("pretrain")
    log: dag.log_template("pretrain")
    message: message("pretrain")
    threads: threads("pretrain")
    resources: gpu=gpu("pretrain")
    shell: dag.snakemake_command("pretrain")


rule adapt:
    input: code("adapt"), inputs("adapt"), stamp("adapt")
    output: outputs("adapt")
    params: reads=reads("adapt")
    log: dag.log_template("adapt")
    message: message("adapt")
    threads: threads("adapt")
    priority: lambda wildcards: job("adapt", wildcards).priority(P)
    resources: gpu=gpu("adapt")
    shell: dag.snakemake_command("adapt")


rule settings:
    input: code("settings"), inputs("settings"), stamp("settings")
    output: outputs("settings")
    params: reads=reads("settings")
    log: dag.log_template("settings")
    message: message("settings")
    threads: threads("settings")
    resources: gpu=gpu("settings")
    shell: dag.snakemake_command("settings")


rule finetune:
    input: code("finetune"), inputs("finetune"), stamp("finetune")
    output: outputs("finetune")
    params: reads=reads("finetune")
    log: dag.log_template("finetune")
    message: message("finetune")
    threads: threads("finetune")
    priority: lambda wildcards: job("finetune", wildcards).priority(P)
    resources: gpu=gpu("finetune")
    shell: dag.snakemake_command("finetune")


rule evaluate:
    input: code("evaluate"), inputs("evaluate"), stamp("evaluate")
    output: outputs("evaluate")
    params: reads=reads("evaluate")
    log: dag.log_template("evaluate")
    message: message("evaluate")
    threads: threads("evaluate")
    resources: gpu=gpu("evaluate")
    shell: dag.snakemake_command("evaluate")
