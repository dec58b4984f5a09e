# scratchlm: the pipeline as a Snakemake workflow. Thin on purpose: every rule calls one
# `python -m scratchlm <stage>` command, the same one dvc.yaml runs (tests/test_frontends.py
# checks that the two declare the same stages, commands and outputs).

configfile: "params.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "results/report.md",
