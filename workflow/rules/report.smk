from scratchlm import timing


rule report:
    input:
        src("report.py", "compare.py", "figures.py", "metrics.py", "workflow.py"),
        expand("results/data/{dataset}.json", dataset=P["data"]["datasets"]),
        expand("results/pretrain/{model}/{f}", model=P["pretrain"]["models"], f=["metrics.json", "samples.md", "plots"]),
        [f"results/{kind}/{r.task}/{r.model}/{r.name}.{ext}" for r in runs(P)
         for kind, ext in (("metrics", "json"), ("details", "json"), ("predictions", "jsonl"),
                           ("plots/confusion", "json"))],
        [f"results/finetune/{r.task}/{r.model}/{r.name}/{f}" for r in runs(P) for f in ("metrics.json", "plots")],
        [str(timing.path(stage, name)) for stage, name in timing.stage_runs(P)],
    output:
        report("results/report.md", caption="../report/report.rst", category="Report"),
        report("results/report.html", caption="../report/report.rst", category="Report"),
        report(directory("results/figures"), patterns=["{name}.png"], caption="../report/figures.rst",
               category="Figures"),
    params:
        report=P["report"],
    log:
        "logs/report.log",
    threads: 1
    shell:
        "python -m scratchlm report > {log} 2>&1"
