"""``tidymlflow sync``: write the jobs kept in the journal (server down, hung or killed, disk full,
writer killed) to MLflow, oldest first.

Idempotent: a job is deleted once written, and a job written in part before is completed, never
written twice (runs are found by their ``tidymlflow.handle`` tag). Replayed runs keep their tree,
params, metrics (with their original times), tags and files.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from dataclasses import dataclass, field

from tidymlflow._jobs import journal as _journal


@dataclass
class Synced:
    """What one journal's sync did."""

    tracking_uri: str
    delivered: int = 0
    runs: int = 0
    left: int = 0
    busy: int = 0  # jobs another process (a running writer) holds now
    errors: list[str] = field(default_factory=list)
    reason: str = ""


def sync(tracking_uri: str | None = None) -> list[Synced]:
    """Deliver every kept job (only those of ``tracking_uri`` when given); one report per
    journal. A journal stops at its first job that still cannot be written, so that jobs are
    written in the order they were made."""
    from tidymlflow._writer.delivery import Deliverer
    from tidymlflow._writer.failures import Undelivered

    deliverer = Deliverer(apply_target=True)
    reports = []
    wanted = tracking_uri.rstrip("/") if tracking_uri else None
    for folder, key in _journal.journals():
        uri = key.split(" in ", 1)[0].rstrip("/")  # a relative URI's key names its folder too
        if wanted and uri != wanted:
            continue
        jobs = _journal.pending(folder)
        report = Synced(key)
        refused = _journal.trusted(folder)
        if refused and jobs:  # another user's jobs (a pickled model runs code when read): never
            report.left = len(jobs)
            report.reason = (f"not replayed: the journal folder {folder} {refused}; only journals of "
                             "your own that no one else can write are replayed")
            reports.append(report)
            continue
        for position, job in enumerate(jobs):
            with _journal.locked(job) as ours:
                if not ours:
                    report.busy += 1
                    continue
                try:
                    with contextlib.redirect_stdout(io.StringIO()):  # MLflow's "View run at" lines
                        result = deliverer.deliver(job)
                except Undelivered as exc:
                    report.left, report.reason = len(jobs) - position, str(exc)
                    break
                except Exception as exc:  # unreadable: keep it, say so, go on
                    report.left += 1
                    report.errors.append(f"{job}: {type(exc).__name__}: {exc}")
                    continue
                _journal.remove(job)
            report.delivered += 1
            report.runs += len(result.created)
            report.errors.extend(result.errors)
        if jobs:
            reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    """The ``tidymlflow`` command (``tidymlflow sync``; also ``python -m tidymlflow sync``)."""
    parser = argparse.ArgumentParser(prog="tidymlflow", description="tidymlflow's command line")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("sync", help="write the runs kept in the local journal to MLflow")
    cmd.add_argument("--tracking-uri", help="only the jobs of this tracking URI")
    args = parser.parse_args(argv)
    from tidymlflow._jobs.names import HTTP_DEFAULTS
    from tidymlflow._writer.upkeep import persist_sqlite_journal

    persist_sqlite_journal()  # the command's process is tidymlflow's own
    for key, value in HTTP_DEFAULTS.items():  # the writer's short timeouts, unless the user set them
        os.environ.setdefault(key, value)
    reports = sync(args.tracking_uri)
    if not reports:
        print(f"tidymlflow sync: nothing to write (journal: {_journal.root()})")
        return 0
    for r in reports:
        line = f"tidymlflow sync: {r.tracking_uri}: wrote {r.delivered} call(s), {r.runs} run(s)"
        if r.left:
            line += f"; {r.left} kept for later ({r.reason or 'see the errors'})"
        if r.busy:
            line += f"; {r.busy} being written by a running writer"
        print(line)
        for error in r.errors:
            print(f"  error: {error}", file=sys.stderr)
    return 1 if any(r.left for r in reports) else 0
