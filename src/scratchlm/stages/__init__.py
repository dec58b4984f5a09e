"""The pipeline's stages, one module each, named as the CLI subcommand, the Snakemake rule and the
DVC stage (the table in scratchlm.dag). Each has `run(params, **wildcards)`.

datasets' `map` on a loaded dataset would write cache-*.arrow files into the folder it was loaded
from, another stage's DVC output, changing its hash after the fact: no stage caches.
"""

from datasets import disable_caching

disable_caching()
