"""`scratchlm check`: every check that needs no training, before the first job — params against
the schema and the cross-checks, each local file present, the device and precision available,
each local dataset readable (its header and first rows, in the columns its spec names) — each
failure one line, as the stage would have said it; then the warnings (checks.warnings)."""

from __future__ import annotations

import itertools
import sys

from . import checks, devices
from . import params as params_mod
from .sources import local
from .stages.data import Canon

FIRST_ROWS = 5  # enough to find a missing column or an unreadable format


def _readable(name: str, spec: dict) -> None:
    """A local dataset's files open in their format and their first rows have the spec's columns."""
    if spec["source"] == "mix":
        for part, sub in spec["parts"].items():
            _readable(f"{name}.parts.{part}", sub)
        return
    if spec["source"] != "local":
        return  # the hub: only the data stage can tell (it needs the network or a filled cache)
    for records in local.records(name, spec)[0].values():
        if records is not None:
            Canon(name, spec, {}).rows(itertools.islice(records, FIRST_ROWS))


def run(args) -> None:
    p = params_mod.load(args.params)
    params_mod.check_local_files(p)
    device = devices.pick_device(p["device"])
    devices.pick_precision(p["precision"], device)
    for name, spec in p["data"]["datasets"].items():
        _readable(name, spec)
    for line in checks.warnings(p):
        print(f"scratchlm: warning: {args.params}: {line}", file=sys.stderr)
    print(f"{args.params}: valid; its files are there and readable, device {device}")

