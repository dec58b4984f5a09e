"""`scratchlm dag --explain STAGE`: what the stage table says of a stage, for the person about to
change it: its jobs under the current params, the params each reads (and the schema defaults that
can fill them), the source files its command runs, what it reads and what it writes."""

from __future__ import annotations

from . import dag, methods


def _list(title: str, items: list[str]) -> str:
    return f"{title}:\n" + "".join(f"  {item}\n" for item in items) if items else f"{title}: none\n"


def stage(name: str, params: dict) -> str:
    s = dag.STAGES[name]
    jobs = dag.jobs(params, name)
    lines = [f"{name}: {s.help}\n",
             f"jobs: {len(jobs)}, one per {' x '.join(s.wildcards) or 'pipeline'}"
             f"{' (each fine-tuning run)' if s.runs else ''}; module src/scratchlm/stages/{name}.py; "
             f"{'a training stage (half the cores, a gpu unit on a GPU machine)' if s.training else 'no training'}\n"]
    used = {j.run.kind for j in jobs} if s.runs else set()
    kinds = [(suffix, kind) for suffix, kind in dag.RUN_KINDS.items() if suffix in used] if s.runs else [("", None)]
    for suffix, kind in kinds:
        where = f" of the {name}{suffix} runs ({kind.name}; methods {', '.join(kind.methods)})" if kind else ""
        lines.append(_list(f"params{where}", dag.key_templates(s, kind)))
        tracked = dag.default_keys(s, kind)
        lines.append(f"schema defaults tracked beside them ({dag.DEFAULTS}): {len(tracked)} nodes, "
                     f"{', '.join(k.removeprefix('properties.') for k in tracked)}\n")
    example = jobs[0] if jobs else None
    lines.append(_list("code (its command's imports" + (", and the job's own)" if s.code else ")"),
                       dag.code(params, example) if example else dag.code_deps(name)))
    if example:
        lines.append(_list(f"inputs of {example.dvc_stage}", dag.inputs(params, example)))
        lines.append(_list(f"outputs of {example.dvc_stage}", example.outputs(params)))
    if s.runs:
        lines.append(_list("methods", [f"{m.name}: trains {m.trains}" for m in methods.METHODS.values()]))
    return "\n".join(lines)
