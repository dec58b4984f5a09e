# Data preparation: get each dataset, train the tokenizer, encode each task, pack the LM corpus.


def local_files(w):
    """A local dataset's own files: Snakemake sees an edit in place, which the folder's mtime hides
    (DVC hashes the whole data/external folder)."""
    return [path for _, path in scratchlm_params.local_files(P["data"]["datasets"][w.dataset], w.dataset)]


rule data:
    input: code("data"), inputs("data"), stamp("data"), local_files
    output: outputs("data")
    params: reads=reads("data")
    log: dag.log_template("data")
    message: message("data")
    threads: threads("data")
    resources: gpu=gpu("data")
    shell: dag.snakemake_command("data")


rule tokenizer:
    input: code("tokenizer"), inputs("tokenizer"), stamp("tokenizer")
    output: outputs("tokenizer")
    params: reads=reads("tokenizer")
    log: dag.log_template("tokenizer")
    message: message("tokenizer")
    threads: threads("tokenizer")
    resources: gpu=gpu("tokenizer")
    shell: dag.snakemake_command("tokenizer")


rule encode:
    input: code("encode"), inputs("encode"), stamp("encode")
    output: outputs("encode")
    params: reads=reads("encode")
    log: dag.log_template("encode")
    message: message("encode")
    threads: threads("encode")
    resources: gpu=gpu("encode")
    shell: dag.snakemake_command("encode")


rule pack:
    input: code("pack"), inputs("pack"), stamp("pack")
    output: outputs("pack")
    params: reads=reads("pack")
    log: dag.log_template("pack")
    message: message("pack")
    threads: threads("pack")
    resources: gpu=gpu("pack")
    shell: dag.snakemake_command("pack")
