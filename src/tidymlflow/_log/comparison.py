"""The skeleton every comparison shares (tuning candidates, workflows of a set): rank the
entries by one metric, then open one child run per entry, best first, each tagged with its
``rank``. What goes into each child and on the parent stays with the caller."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from tidymlflow._read import common
from tidymlflow._recording.call import Call
from tidymlflow._recording.recorder import Recorder
from tidymlflow._recording.runs import now_ms

K = TypeVar("K", bound=Hashable)


def ranked_children(call: Call, parent: Recorder, order: Sequence[K], *,
                    name: Callable[[K, int], str], tags: Callable[[K], Mapping[str, Any]],
                    fill: Callable[[Recorder, K], None]) -> dict[K, Recorder]:
    """One child of ``parent`` per entry of ``order`` (best first), named ``name(entry, rank)``,
    tagged ``tags(entry)`` and ``rank`` (1 = best), filled by ``fill(child, entry)``.

    The MLflow UI lists runs newest first, so the best child gets the latest start time; a
    child's duration would only be tidymlflow's write time, so it is zero."""
    children: dict[K, Recorder] = {}
    base = now_ms()
    for position, entry in enumerate(order, start=1):
        start = base + len(order) - position
        child = call.start_run(name(entry, position), parent=parent, start_time=start,
                               tags={**tags(entry), "rank": position})
        child.end_time = start
        fill(child, entry)
        children[entry] = child
    return children


#: MLflow's run description (the "Description" box of a run in the UI), markdown.
NOTE_TAG = "mlflow.note.content"
#: Rows of a leaderboard in a parent's description.
NOTE_ROWS = 10


def describe(parent: Recorder, intro: str, header: Sequence[str], rows: Sequence[Sequence[Any]],
             outro: str = "") -> None:
    """The parent's description: what was compared, then the best ``NOTE_ROWS`` as a markdown
    table (values with 4 significant digits)."""
    def cell(value: Any) -> str:
        return common.value_text(value).replace("|", "\\|").replace("\n", " ")

    lines = [intro, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows[:NOTE_ROWS]]
    if len(rows) > NOTE_ROWS:
        lines.append(f"\n({len(rows) - NOTE_ROWS} more not shown.)")
    parent.set_tags({NOTE_TAG: "\n".join(lines + ([outro] if outro else []))})


def better(metric: str) -> str:
    """``lower is better`` or ``higher is better`` for ``metric``."""
    return f"{'lower' if common.lower_is_better(metric) else 'higher'} is better"


def best_metrics(parent: Recorder, order: Sequence[K], metrics: Mapping[K, Mapping[str, float]],
                 step: int = 0) -> None:
    """The winner's metrics on the parent (nothing when no entry could be ranked)."""
    if order:
        parent.log_metrics(metrics[order[0]], step=step)
