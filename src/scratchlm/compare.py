"""`scratchlm compare [REV ...]`: one table of the main test metrics across git revisions and
their DVC experiments, read through DVC's own API (`dvc.api.exp_show`), as Markdown or CSV."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from pathlib import Path

from . import paths
from .errors import ScratchError, first_line
from .kinds import TASK_METRICS

# results/metrics/<task>/<model>/<run>.json:<metric>, for the main metric of each task type
KEY = re.compile("^" + re.escape(paths.METRICS.split("{")[0]) + r"(?P<run>[^:]+)\.json:(?P<metric>"
                 + "|".join(m[0] for m in TASK_METRICS.values()) + ")$")


# results/headline.json:<task>.gain (and its 95% interval, gain_low and gain_high)
GAIN = re.compile("^" + re.escape(paths.HEADLINE) + r":(?P<task>[^.]+)\.(?P<key>gain(_low|_high)?)$")

PRESET = "report.preset"  # the params key naming the preset a run was made with


def rows(revs: list[str], repo: str = ".", workspace: bool = False) -> list[dict]:
    """One row per revision and per experiment on it (a revision may be an experiment's name): its
    name, the preset it ran, then `task/model/run` -> value; first the workspace's own results when
    asked."""
    import dvc.api

    experiments = _check_revisions(revs or ["HEAD"], repo)
    try:
        found = dvc.api.exp_show(repo=repo, revs=revs or ["HEAD"])
    except Exception as e:  # unknown revision, not a DVC repository: one line either way
        raise ScratchError(f"compare: {' '.join(revs) or 'HEAD'}: {first_line(e)}") from None
    out = []
    for row in found:
        if row.get("rev") == "workspace" and not workspace:
            continue
        if row.get("rev") in experiments:  # asked for by name: DVC shows it as a baseline of its own
            name = f"{row['rev']} ({experiments[row['rev']]})"
        elif row.get("typ") in ("baseline", "workspace"):
            name = row["rev"]
        else:
            name = f"{row['rev']} ({row.get('Experiment') or 'experiment'})"
        values = {}
        for key, value in row.items():
            m, g = KEY.match(key), GAIN.match(key)
            if m and isinstance(value, (int, float)):
                values[f"{m['run']} {m['metric']}"] = value
            elif g and isinstance(value, (int, float)):  # the pretrained runs' gain over scratch
                values[f"{g['task']} {g['key']}"] = value
        preset = next((v for k, v in row.items() if k.endswith(PRESET)), None)
        out.append({"revision": name, "preset": preset or "none", **values})
    return out


def _check_revisions(revs: list[str], repo: str) -> dict[str, str]:
    """Name what is wrong in git's words before DVC reports a bare "SCM error". Returns the names
    given that are DVC experiments, by the short commit DVC shows them under."""
    experiments = {}
    for rev in revs:
        proc = subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            continue
        sha = _experiment(rev, repo)
        if sha:
            experiments[sha[:7]] = rev
            continue
        inside = subprocess.run(["git", "-C", repo, "rev-parse", "--git-dir"], capture_output=True).returncode == 0
        if inside:
            raise ScratchError(f"compare: {rev!r} is neither a commit of this repository nor a DVC experiment; see "
                               f"`git log` and `dvc exp list`")
        raise ScratchError(f"compare: {Path(repo).resolve()} is not a git repository; run it in the project's clone")
    return experiments


def _experiment(name: str, repo: str) -> str | None:
    """The commit of the DVC experiment of that name, or None."""
    from dvc.repo import Repo
    from dvc.repo.experiments.utils import resolve_name

    try:
        with Repo(repo) as dvc_repo:
            ref = resolve_name(dvc_repo.scm, [name]).get(name)
            return dvc_repo.scm.get_ref(str(ref)) if ref else None
    except Exception:  # not a DVC repository, an ambiguous name: not an experiment we can show
        return None


def presets_note(found: list[dict]) -> str | None:
    """A line saying so when the columns were made with different presets: not like for like."""
    made = {r["revision"]: r["preset"] for r in found}
    if len(set(made.values())) < 2:
        return None
    return ("compare: note: these were made with different presets (" + "; ".join(f"{rev}: {preset}" for rev, preset
            in made.items()) + "): their runs differ in data, models or budget, not only in what changed")


def table(found: list[dict], fmt: str = "markdown") -> str:
    columns = sorted({k for r in found for k in r if k not in ("revision", "preset")})
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, ["revision", "preset", *columns], lineterminator="\n")
        writer.writeheader()
        writer.writerows(found)
        return buf.getvalue()
    # one row per metric, one column per revision: runs outnumber revisions; a task's gain in one
    # row with its interval
    head = "| run metric | " + " | ".join(r["revision"] for r in found) + " |"
    lines = [head, "|" + "---|" * (len(found) + 1)]
    for c in columns:
        if c.endswith(("gain_low", "gain_high")):
            continue
        if c.endswith(" gain"):
            cells = [_gain(r.get(c), r.get(f"{c}_low"), r.get(f"{c}_high")) for r in found]
            lines.append(f"| {c.split()[0]} pretrained − scratch (95% CI) | " + " | ".join(cells) + " |")
            continue
        lines.append(f"| {c} | " + " | ".join(_cell(r.get(c)) for r in found) + " |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _gain(gain, low, high) -> str:
    """`+1.09 (+0.19 to +2.19)` in points; the interval left out where the run has none."""
    if gain is None:
        return "–"
    return f"{100 * gain:+.2f}" + ("" if low is None or high is None else f" ({100 * low:+.2f} to {100 * high:+.2f})")


def run(args) -> None:
    """`scratchlm compare [REV ...] [--format csv]`."""
    found = rows(args.revs)
    if not found:
        raise ScratchError("compare: no revision with metrics found; commit a run first (dvc.lock and results/)")
    note = presets_note(found)
    if note:
        print(note, file=sys.stderr)
    print(table(found, args.format), end="")
