"""Relations as declared in a catalogue and checked over a version's records (pure)."""

from __future__ import annotations

import json

import pytest

from isd_service.domain.catalogue import Catalogue, CatalogueError, check_relations
from isd_service.domain.relations import broken_relations

PARENT = {"id": "meter_type", "name": "Meter type", "source": "Meter_Type", "key": ["id"],
          "fields": [{"id": "id", "name": "ID", "type": "string", "required": True,
                      "max_length": 3}]}
CHILD = {"id": "meter", "name": "Meter", "source": "Meter", "key": ["serial"],
         "fields": [{"id": "serial", "name": "Serial", "type": "string", "required": True,
                     "max_length": 10},
                    {"id": "type_id", "name": "Type", "type": "string", "max_length": 3}],
         "foreign_keys": [{"fields": ["type_id"],
                           "reference": {"entity": "meter_type", "fields": ["id"]}}]}


def rows(records: dict[str, list[dict[str, str]]]):  # type: ignore[no-untyped-def]
    return lambda eid: [json.dumps(r) for r in records.get(eid, [])]


def test_a_record_with_no_value_refers_to_nothing_and_values_compare_as_published() -> None:
    catalogue = Catalogue.from_list([PARENT, CHILD])
    found, total = broken_relations(catalogue, rows({
        "meter_type": [{"id": "1"}],
        "meter": [{"serial": "A", "type_id": "1"}, {"serial": "B"},
                  {"serial": "C", "type_id": "001"}]}))
    assert total == 1
    assert found == [{"entity": "meter", "key": {"serial": "C"},
                      "relation": "meter(type_id) -> meter_type(id)",
                      "values": {"type_id": "001"}, "reference": "meter_type"}]


def test_the_listed_records_are_capped_but_counted() -> None:
    catalogue = Catalogue.from_list([PARENT, CHILD])
    meters = [{"serial": str(i), "type_id": "X"} for i in range(10)]
    found, total = broken_relations(catalogue, rows({"meter": meters}), limit=3)
    assert (len(found), total) == (3, 10)


def test_a_relation_to_a_missing_entity_or_field_or_another_type_is_refused() -> None:
    for reference, says in (({"entity": "nothing", "fields": ["id"]}, "no entity 'nothing'"),
                            ({"entity": "meter_type", "fields": ["code"]}, "has no field"),
                            ({"entity": "meter", "fields": ["serial"]}, None)):
        child = {**CHILD, "foreign_keys": [{"fields": ["type_id"], "reference": reference}]}
        catalogue = Catalogue.from_list([PARENT, child])
        if says is None:
            check_relations(catalogue)  # a relation within an entity is allowed
            continue
        with pytest.raises(CatalogueError, match=says):
            check_relations(catalogue)
    integer_parent = {**PARENT, "fields": [{"id": "id", "name": "ID", "type": "integer",
                                            "required": True}]}
    with pytest.raises(CatalogueError, match=r"\(string\) cannot refer to"):
        check_relations(Catalogue.from_list([integer_parent, CHILD]))
