"""The chain of deltas from the version held to the one wanted, as a static mirror holds them.

The service's public rule (README, "Static mirror"), implemented again here so the client
needs nothing of the service: versions are counted by their position in
`versions/index.json`; a mirror holds the delta from position i to i + 2**j whenever 2**j
divides i (every j at position 0). Walking greedily, the longest such stride that does not
pass the target, any a -> b takes at most about 2 log2(b - a) deltas.
"""

from __future__ import annotations


def chain(a: int, b: int) -> list[tuple[int, int]]:
    """The deltas (pairs of positions) that lead from position ``a`` to position ``b``."""
    if not 0 <= a <= b:
        raise ValueError(f"no chain of deltas from position {a} to position {b}")
    hops = []
    while a < b:
        stride = 1
        while a + stride * 2 <= b and (a == 0 or a % (stride * 2) == 0):
            stride *= 2
        hops.append((a, a + stride))
        a += stride
    return hops
