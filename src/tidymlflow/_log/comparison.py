"""The skeleton every comparison shares (tuning candidates, workflows of a set): rank the
entries by one metric, then open one child run per entry, best first, each tagged with its
``rank``. What goes into each child and on the parent stays with the caller."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from tidymlflow._read import common
from tidymlflow._writer import RunWriter
from tidymlflow.layer import Call

K = TypeVar("K", bound=Hashable)


def rank(scores: Mapping[K, Any], metric: str) -> list[K]:
    """The entries best first for ``metric`` (missing scores last)."""
    return common.rank_order(scores, metric)


def ranked_children(call: Call, parent: RunWriter, order: Sequence[K], *,
                    name: Callable[[K], str], tags: Callable[[K], Mapping[str, Any]],
                    fill: Callable[[RunWriter, K], None]) -> dict[K, RunWriter]:
    """One child of ``parent`` per entry of ``order`` (best first), named ``name(entry)``,
    tagged ``tags(entry)`` and ``rank`` (1 = best), filled by ``fill(child, entry)``."""
    children: dict[K, RunWriter] = {}
    for position, entry in enumerate(order, start=1):
        child = call.start_run(name(entry), parent=parent, tags={**tags(entry), "rank": position})
        fill(child, entry)
        children[entry] = child
    return children


def best_metrics(parent: RunWriter, order: Sequence[K], metrics: Mapping[K, Mapping[str, float]],
                 step: int = 0) -> None:
    """The winner's metrics on the parent (nothing when no entry could be ranked)."""
    if order:
        parent.log_metrics(metrics[order[0]], step=step)
