# scratchlm: the pipeline as a Snakemake workflow. Thin on purpose: every rule takes its inputs,
# outputs, params and command from the stage table in src/scratchlm/dag.py, which dvc.yaml is
# generated from, and calls one `python -m scratchlm <stage>` command.

configfile: "params.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        paths.REPORT,
