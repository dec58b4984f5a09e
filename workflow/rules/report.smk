# The report: tables and figures from every run's results; its outputs also go into
# `snakemake --report` (captions in workflow/report/).


rule report:
    input: code("report"), inputs("report"), stamp("report")
    output: outputs("report")
    params: reads=reads("report")
    log: dag.log_template("report")
    message: message("report")
    threads: threads("report")
    resources: gpu=gpu("report")
    shell: dag.snakemake_command("report")
