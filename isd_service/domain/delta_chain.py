"""Which deltas a static mirror holds, and the chain of them that leads from one version to
another.

Versions are counted by position (0 for the first version published, 1 for the next, ...),
never by number: MDD's numbering has gaps. A mirror holds the delta from position ``i`` to
``i + 2**j`` for every ``j`` such that ``2**j`` divides ``i`` (every ``j`` for position 0):
every consecutive pair (stride 1), plus skip deltas of strides 2, 4, 8, ... aligned on their
stride, about two files per version. A new version only adds the deltas that end at it, so
what a mirror already holds never changes. Any ``a -> b`` is then a chain of at most about
``2 log2(b - a)`` of them: the greedy walk takes, at each step, the longest held stride that
does not pass ``b``.

The rule is public (README, "Static mirror"); isd_service.sync.chain implements it again,
for a client that imports nothing of the service.
"""

from __future__ import annotations


def strides_from(position: int, end: int) -> list[int]:
    """The strides of the deltas held from ``position`` that end at or before ``end``."""
    strides = []
    stride = 1
    while position + stride <= end and (position == 0 or position % stride == 0):
        strides.append(stride)
        stride *= 2
    return strides


def pairs(count: int, start: int = 0) -> list[tuple[int, int]]:
    """Every delta (as a pair of positions) a mirror of ``count`` versions holds, leaving out
    those that start before position ``start``."""
    return [(i, i + s) for i in range(start, count) for s in strides_from(i, count - 1)]


def chain(a: int, b: int) -> list[tuple[int, int]]:
    """The deltas (pairs of positions) that lead from position ``a`` to position ``b``."""
    if not 0 <= a <= b:
        raise ValueError(f"no chain of deltas from position {a} to position {b}")
    hops = []
    while a < b:
        step = strides_from(a, b)[-1]
        hops.append((a, a + step))
        a += step
    return hops
