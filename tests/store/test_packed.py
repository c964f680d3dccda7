"""The Redis store's packed batches (store.packed): what a batch gives back, whole or by key."""

from __future__ import annotations

from linkprobe.store.packed import COMPACT, ON_THE_WAY, classes, compact, pack, segments, unpack

ROWS = [
    (7, "o:ok s:200 l:10", '{"url":"http://a.example/e:dns","index":7}'),  # the key's text in its JSON
    (3, "o:broken e:dns", '{"url":"http://b.example/","index":3}'),
    (9, "o:broken s:404 l:50", '{"url":"http://c.example/s:40","index":9}'),
    (4, "o:broken e:dns l:+Inf", '{"url":"http://d.example/\\t\\n","index":4}'),
]


def test_a_batch_gives_back_its_rows_as_packed_either_way() -> None:
    for how in (ON_THE_WAY, COMPACT):
        packed = pack(ROWS, how)
        assert unpack(packed) == ROWS and compact(packed) == (how == COMPACT)


def test_a_key_selects_the_rows_counted_by_it_not_the_ones_whose_json_holds_its_text() -> None:
    packed = pack(ROWS)
    assert [row[0] for row in unpack(packed, "e:dns")] == [3, 4]
    assert [row[0] for row in unpack(packed, "s:40")] == []  # not a prefix of s:404
    assert [row[0] for row in unpack(packed, "o:broken")] == [3, 9, 4]


def test_rows_are_classed_by_their_indexed_keys_and_cut_into_segments() -> None:
    assert {name: [row[0] for row in rows] for name, rows in classes(ROWS).items()} == {
        ("o:ok", "s:200"): [7], ("o:broken", "e:dns"): [3, 4], ("o:broken", "s:404"): [9],
    }  # fmt: skip
    rows = [(i, "o:ok s:200", "{}") for i in range(500, 2700, 700)]
    assert [(first, [row[0] for row in part]) for first, part in segments(rows, 500)] == [
        (500, [500, 1200]), (1500, [1900]), (2500, [2600]),
    ]  # fmt: skip
