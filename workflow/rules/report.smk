rule report:
    input:
        src("report.py", "metrics.py", "workflow.py"),
        expand("results/data/{dataset}.json", dataset=P["data"]["datasets"]),
        expand("results/pretrain/{model}/{f}", model=P["pretrain"]["models"], f=["metrics.json", "samples.md"]),
        [f"results/{kind}/{r.task}/{r.model}/{r.name}.{ext}" for r in runs(P)
         for kind, ext in (("metrics", "json"), ("predictions", "jsonl"))],
    output:
        "results/report.md",
    params:
        report=P["report"],
    log:
        "logs/report.log",
    threads: 1
    shell:
        "python -m scratchlm report > {log} 2>&1"
