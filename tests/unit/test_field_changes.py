"""Field-level changes in a delta: ``changed`` on every update, ``previous`` on request."""

from __future__ import annotations

from isd_service.domain.catalogue import EntityDef, FieldDef
from isd_service.domain.delta import KeyChange, change_dict, changed_fields, net_changes
from isd_service.domain.history import record_history
from isd_service.domain.records import encode

PARTY = EntityDef(
    id="party", name="Party", source="Party", key=["party_id"],
    fields=[FieldDef(id="party_id", name="Party ID", type="string", required=True),
            FieldDef(id="zname", name="Name", type="string", required=True),
            FieldDef(id="address", name="Address", type="string", required=False)])


def rec(**values: str | None) -> str:
    return encode(values)


def test_an_update_names_its_changed_fields_sorted_and_previous_only_on_request() -> None:
    change = KeyChange("party", "P1", rec(party_id="P1", zname="Old", address="1 Road"),
                       rec(party_id="P1", zname="New"))
    plain = change_dict(PARTY, change)
    assert plain == {"entity": "party", "op": "update", "key": {"party_id": "P1"},
                     "record": {"party_id": "P1", "zname": "New", "address": None},
                     "changed": ["address", "zname"]}
    detailed = change_dict(PARTY, change, previous=True)
    assert detailed["previous"] == {"party_id": "P1", "zname": "Old", "address": "1 Road"}


def test_inserts_and_deletes_carry_no_changed_fields() -> None:
    insert = change_dict(PARTY, KeyChange("party", "P1", None, rec(party_id="P1", zname="A")),
                         previous=True)
    delete = change_dict(PARTY, KeyChange("party", "P1", rec(party_id="P1", zname="A"), None),
                         previous=True)
    assert "changed" not in insert and "previous" not in insert
    assert delete == {"entity": "party", "op": "delete", "key": {"party_id": "P1"},
                      "record": None}


def test_net_changes_compare_the_two_ends_only() -> None:
    """A field changed and changed back between the versions is not named."""
    rows = [("P1", rec(party_id="P1", zname="A", address="x"), 1, 2),
            ("P1", rec(party_id="P1", zname="B", address="y"), 2, 3),
            ("P1", rec(party_id="P1", zname="A", address="z"), 3, None)]
    [change] = net_changes("party", rows, 1, 3)
    assert change_dict(PARTY, change)["changed"] == ["address"]
    assert changed_fields(PARTY, {"zname": "A"}, {"zname": "A"}) == []


def test_a_records_history_keeps_what_each_version_changed_from() -> None:
    periods = record_history(PARTY, [(1, 2, rec(party_id="P1", zname="A")),
                                     (2, None, rec(party_id="P1", zname="B"))])
    assert periods[0].previous is None and periods[0].changed == {"party_id", "zname",
                                                                  "address"}
    assert periods[1].previous == {"party_id": "P1", "zname": "A", "address": None}
    assert periods[1].changed == {"zname"}
