"""Stage `settings`: a model's fine-tuning settings as its runs see them, written to
results/settings/finetune/<model>.json: `finetune.training` without the keys that
`finetune.overrides.<model>` sets, and those overrides (training_config.model_layers).

The fine-tuning runs read this file, not the two sections: DVC gives all the items of a matrix
stage one params list, so a run that tracked `finetune.training` whole would rerun when a value
its model's override pins changed. This stage reruns instead (it takes a second) and leaves such
a model's file as it was, bytes and date: neither front end reruns that model's runs (Snakemake
reruns a settings job only when what it writes changes: dag.settings)."""

from __future__ import annotations

import json

from .. import paths
from ..atomic import write_json
from ..training_config import model_layers


def run(params: dict, model: str) -> None:
    out = paths.path(paths.SETTINGS, model=model)
    layers = model_layers(params, "finetune", model)
    if not out.exists() or json.loads(out.read_text(encoding="utf-8")) != layers:
        write_json(out, layers)
