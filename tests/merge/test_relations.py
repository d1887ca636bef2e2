from __future__ import annotations

from rapport.merge.relations import RELATIONS, customer_references


def test_every_foreign_key_to_customer_has_a_merge_strategy() -> None:
    # A new table that references customers fails here until rapport.merge.relations says what a
    # merge (and its undo) does with its rows.
    declared = {(r.table, r.column) for r in RELATIONS}
    found = set(customer_references())
    assert sorted(found - declared) == []
    assert sorted(declared - found) == []


def test_unique_keys_name_real_columns() -> None:
    for r in RELATIONS:
        assert all(c in r.t.c for c in r.unique_on), r
        assert (r.strategy == "move_unique") == bool(r.unique_on), r
