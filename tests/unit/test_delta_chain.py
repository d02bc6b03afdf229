"""The skip deltas a mirror holds, and the chains through them (the service's rule and the
client's own implementation of it)."""

from __future__ import annotations

import math

import pytest

from isd_service.domain import delta_chain
from isd_service.sync import chain as client_chain


def test_a_mirror_holds_consecutive_and_aligned_skip_deltas() -> None:
    assert delta_chain.pairs(6) == [(0, 1), (0, 2), (0, 4), (1, 2), (2, 3), (2, 4), (3, 4),
                                    (4, 5)]
    assert delta_chain.pairs(6, start=3) == [(3, 4), (4, 5)]
    # About two files per version, and a new version only adds the deltas ending at it.
    for count in range(2, 200):
        held = set(delta_chain.pairs(count))
        assert held <= set(delta_chain.pairs(count + 1))
        assert len(held) <= 2 * count + math.log2(count)


def test_every_chain_uses_held_deltas_and_about_two_log2_hops() -> None:
    count = 130
    held = set(delta_chain.pairs(count))
    for a in range(count):
        for b in range(a, count):
            hops = delta_chain.chain(a, b)
            assert hops == client_chain.chain(a, b)
            assert set(hops) <= held
            assert [h[0] for h in hops[1:]] == [h[1] for h in hops[:-1]]
            assert (hops[0][0], hops[-1][1]) == (a, b) if hops else a == b
            if b > a:
                assert len(hops) <= 2 * math.log2(b - a) + 1, (a, b, hops)
    # Mirrored from position 40 on: a chain between held versions never needs an older one.
    from_40 = set(delta_chain.pairs(count, start=40))
    assert all(set(delta_chain.chain(a, b)) <= from_40
               for a in range(40, count) for b in range(a, count))


@pytest.mark.parametrize(("a", "b", "hops"), [
    (0, 4, [(0, 4)]), (1, 4, [(1, 2), (2, 4)]), (3, 8, [(3, 4), (4, 8)]), (5, 5, []),
    (5, 12, [(5, 6), (6, 8), (8, 12)]), (7, 9, [(7, 8), (8, 9)]),
])
def test_chains(a: int, b: int, hops: list[tuple[int, int]]) -> None:
    assert delta_chain.chain(a, b) == client_chain.chain(a, b) == hops


def test_no_chain_backwards() -> None:
    for chain in (delta_chain.chain, client_chain.chain):
        with pytest.raises(ValueError, match="no chain of deltas from position 3 to"):
            chain(3, 2)
