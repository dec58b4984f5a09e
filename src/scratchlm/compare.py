"""`scratchlm compare [REV ...]`: one table of the main test metrics across git revisions and
their DVC experiments, read through DVC's own API (`dvc.api.exp_show`), as Markdown or CSV."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from pathlib import Path

from . import paths
from .errors import ScratchError, first_line
from .kinds import TASK_METRICS

# results/metrics/<task>/<model>/<run>.json:<metric>, for the main metric of each task type
KEY = re.compile("^" + re.escape(paths.METRICS.split("{")[0]) + r"(?P<run>[^:]+)\.json:(?P<metric>"
                 + "|".join(m[0] for m in TASK_METRICS.values()) + ")$")


def rows(revs: list[str], repo: str = ".", workspace: bool = False) -> list[dict]:
    """One row per revision and per experiment on it: its name, then `task/model/run` -> value;
    first the workspace's own results when asked."""
    import dvc.api

    _check_revisions(revs or ["HEAD"], repo)
    try:
        found = dvc.api.exp_show(repo=repo, revs=revs or ["HEAD"])
    except Exception as e:  # unknown revision, not a DVC repository: one line either way
        raise ScratchError(f"compare: {' '.join(revs) or 'HEAD'}: {first_line(e)}") from None
    out = []
    for row in found:
        if row.get("rev") == "workspace" and not workspace:
            continue
        if row.get("typ") in ("baseline", "workspace"):
            name = row["rev"]
        else:
            name = f"{row['rev']} ({row.get('Experiment') or 'experiment'})"
        values = {}
        for key, value in row.items():
            m = KEY.match(key)
            if m and isinstance(value, (int, float)):
                values[f"{m['run']} {m['metric']}"] = value
        out.append({"revision": name, **values})
    return out


def _check_revisions(revs: list[str], repo: str) -> None:
    """Name what is wrong in git's words before DVC reports a bare "SCM error"."""
    for rev in revs:
        proc = subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            inside = subprocess.run(["git", "-C", repo, "rev-parse", "--git-dir"], capture_output=True).returncode == 0
            if inside:
                raise ScratchError(f"compare: {rev!r} is not a commit of this repository; see `git log`")
            raise ScratchError(f"compare: {Path(repo).resolve()} is not a git repository; run it in the project's "
                               f"clone")


def table(found: list[dict], fmt: str = "markdown") -> str:
    columns = sorted({k for r in found for k in r if k != "revision"})
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, ["revision", *columns], lineterminator="\n")
        writer.writeheader()
        writer.writerows(found)
        return buf.getvalue()
    # one row per metric, one column per revision: runs outnumber revisions
    head = "| run metric | " + " | ".join(r["revision"] for r in found) + " |"
    lines = [head, "|" + "---|" * (len(found) + 1)]
    for c in columns:
        lines.append(f"| {c} | " + " | ".join(_cell(r.get(c)) for r in found) + " |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def run(args) -> None:
    """`scratchlm compare [REV ...] [--format csv]`."""
    found = rows(args.revs)
    if not found:
        raise ScratchError("compare: no revision with metrics found; commit a run first (dvc.lock and results/)")
    print(table(found, args.format), end="")
