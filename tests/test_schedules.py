"""Schedules: periods, due times, the catch-up rule, the run lease and `keep`, as pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from linkprobe.schedules import (
    LEASE_GRACE,
    Cron,
    Interval,
    PeriodError,
    Run,
    SchedulePeriod,
    claim,
    last_due,
    lease_ttl,
    next_run,
    parse_period,
    run_id,
    runs_to_drop,
    tick,
)

ANCHOR = datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)  # created at 00:00:07
HOUR = Interval(timedelta(hours=1))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- periods --


@pytest.mark.parametrize(
    ("text", "every"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_intervals_parse_to_their_length(text: str, every: timedelta) -> None:
    assert parse_period(text) == Interval(every)


def test_five_fields_are_a_cron_expression_in_single_spaces() -> None:
    assert parse_period(" 0  3 * * 1-5 ") == Cron("0 3 * * 1-5")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("15x", "not an interval"),
        ("m15", "not an interval"),
        ("1.5h", "not an interval"),
        ("", "not an interval"),
        ("0s", "out of range"),
        ("400d", "out of range"),
        ("0 3 * *", "not a period"),
        ("0 0 3 * * *", "not a period"),  # six fields (seconds) are not the 5-field form
        ("60 * * * *", "Bad minute"),
        ("0 24 * * *", "Bad hour"),
        ("0 0 30 2 *", "Bad day-of-month"),  # a date that never comes
        ("0 0 31 4,6,9,11 *", "Bad day-of-month"),
        ("*/0 * * * *", "Bad minute"),
        ("@daily", "not an interval"),
    ],
)
def test_bad_periods_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(PeriodError, match=says):
        parse_period(text)


# -- due times --


def test_an_interval_runs_at_whole_periods_from_its_anchor() -> None:
    assert next_run(HOUR, ANCHOR, ANCHOR) == at("2026-01-01T01:00:07")
    assert next_run(HOUR, ANCHOR, at("2026-01-01T01:00:07")) == at("2026-01-01T02:00:07")  # strictly after
    assert next_run(HOUR, ANCHOR, at("2025-06-01T00:00:00")) == at("2026-01-01T01:00:07")  # before the anchor
    assert last_due(HOUR, ANCHOR, at("2026-01-01T00:59:59")) is None  # the anchor itself is no run
    assert last_due(HOUR, ANCHOR, at("2026-01-01T05:30:00")) == at("2026-01-01T05:00:07")
    assert last_due(HOUR, ANCHOR, at("2026-01-01T05:00:07")) == at("2026-01-01T05:00:07")  # at or before


def test_a_cron_expression_runs_at_its_fire_times_after_the_anchor() -> None:
    nightly = Cron("0 3 * * *")
    assert next_run(nightly, ANCHOR, ANCHOR) == at("2026-01-01T03:00:00")
    assert next_run(nightly, ANCHOR, at("2026-01-01T03:00:00")) == at("2026-01-02T03:00:00")
    assert last_due(nightly, ANCHOR, at("2026-01-01T02:59:59.999")) is None
    assert last_due(nightly, ANCHOR, at("2026-01-01T03:00:00")) == at("2026-01-01T03:00:00")
    assert last_due(nightly, ANCHOR, at("2026-01-05T12:00:00.5")) == at("2026-01-05T03:00:00")


@pytest.mark.parametrize(
    ("expression", "after", "due"),
    [
        ("0 0 29 2 *", "2026-01-01T00:00:00", "2028-02-29T00:00:00"),  # a leap day, two years on
        ("0 0 31 * *", "2026-04-01T00:00:00", "2026-05-31T00:00:00"),  # April has no 31st
        ("59 23 31 12 *", "2026-12-31T23:59:00", "2027-12-31T23:59:00"),  # across a year
        ("0 9 * * 1-5", "2026-01-02T09:00:00", "2026-01-05T09:00:00"),  # Friday to Monday
        ("0 0 1 * 0", "2026-01-01T00:00:00", "2026-01-04T00:00:00"),  # day and weekday: either (cron's OR)
        ("*/15 * * * *", "2026-01-01T10:14:59.9", "2026-01-01T10:15:00"),
    ],
)
def test_cron_edge_cases(expression: str, after: str, due: str) -> None:
    anchor = at("2025-01-01T00:00:00")
    assert next_run(Cron(expression), anchor, at(after)) == at(due)
    assert last_due(Cron(expression), anchor, at(due)) == at(due)


def test_times_in_another_zone_are_the_same_instants() -> None:
    riga = timezone(timedelta(hours=2))
    local = datetime(2026, 1, 1, 5, 0, tzinfo=riga)  # 03:00 UTC
    assert last_due(Cron("0 3 * * *"), ANCHOR, local) == at("2026-01-01T03:00:00")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_run(HOUR, ANCHOR, datetime(2026, 1, 1))  # naive: the point of the test


# -- catch-up --


def test_a_run_is_due_once_its_time_has_come_and_not_again() -> None:
    first = tick(HOUR, ANCHOR, None, at("2026-01-01T01:00:08"))
    assert first.due == at("2026-01-01T01:00:07") and first.next_at == at("2026-01-01T02:00:07")
    again = tick(HOUR, ANCHOR, first.due, at("2026-01-01T01:30:00"))
    assert again.due is None and again.next_at == at("2026-01-01T02:00:07")


def test_nothing_is_due_before_the_first_period_ends() -> None:
    assert tick(HOUR, ANCHOR, None, at("2026-01-01T00:59:00")).due is None


def test_after_a_long_downtime_the_missed_runs_start_once() -> None:
    last = at("2026-01-01T01:00:07")
    back = at("2026-03-15T10:20:00")  # 73 days down: 1,769 hourly runs missed
    caught_up = tick(HOUR, ANCHOR, last, back)
    assert caught_up.due == at("2026-03-15T10:00:07")  # the latest one, alone
    assert tick(HOUR, ANCHOR, caught_up.due, back).due is None  # and nothing more until the next
    assert caught_up.next_at == at("2026-03-15T11:00:07")


def test_a_minutely_cron_catches_up_once_after_a_year_down() -> None:
    every_minute = Cron("* * * * *")
    caught_up = tick(every_minute, ANCHOR, at("2026-01-01T00:01:00"), at("2027-01-01T00:00:30"))
    assert caught_up.due == at("2027-01-01T00:00:00")
    assert caught_up.next_at == at("2027-01-01T00:01:00")


# -- the lease --


def test_a_run_has_the_same_identity_on_every_replica() -> None:
    due = at("2026-01-01T03:00:00")
    assert run_id("s1", due) == run_id("s1", due.astimezone(timezone(timedelta(hours=-5))))
    assert run_id("s1", due) == "s1@2026-01-01T03:00:00.000000Z"
    assert run_id("s1", due) != run_id("s2", due) != run_id("s1", due + timedelta(seconds=1))


def test_replicas_racing_for_one_run_start_it_exactly_once() -> None:
    """Each replica computes the tick and tries the claim; the store applies claim and the move of
    the schedule's last claimed due time as one step, in any order of the replicas."""
    now = at("2026-01-01T05:00:09")
    last_claimed: datetime | None = at("2026-01-01T04:00:07")
    started = []
    for replica in ("a", "b", "c"):
        due = tick(HOUR, ANCHOR, at("2026-01-01T04:00:07"), now).due  # all read the same stale state
        assert due is not None
        if claim(last_claimed, due):
            last_claimed = due
            started.append(replica)
    assert started == ["a"]


def test_an_older_run_is_never_claimed_after_a_newer_one() -> None:
    assert claim(None, at("2026-01-01T01:00:07"))
    assert not claim(at("2026-01-01T05:00:07"), at("2026-01-01T04:00:07"))
    assert not claim(at("2026-01-01T05:00:07"), at("2026-01-01T05:00:07"))


def test_a_lease_lives_past_the_next_due_time() -> None:
    due = at("2026-01-01T05:00:07")
    assert lease_ttl(HOUR, ANCHOR, due) == timedelta(hours=1) + LEASE_GRACE
    assert lease_ttl(Cron("0 3 * * *"), ANCHOR, at("2026-01-01T03:00:00")) == timedelta(days=1) + LEASE_GRACE


# -- keep --


def runs(*states: str) -> list[Run]:
    """Runs newest first, one per letter: e (ended) or r (running)."""
    base = at("2026-01-01T00:00:00")
    return [Run(f"t{n}", base - timedelta(hours=n), state == "e") for n, state in enumerate(states)]


@pytest.mark.parametrize(
    ("states", "keep", "dropped"),
    [
        ("eeeee", 3, ["t3", "t4"]),
        ("eee", 3, []),
        ("eee", 1, ["t1", "t2"]),
        ("reee", 1, ["t2", "t3"]),  # the running run keeps its baseline (t1)
        ("rreee", 1, ["t3", "t4"]),  # an older run still running is kept too, with its baseline
        ("eree", 2, ["t3"]),
        ("", 2, []),
    ],
)
def test_keep_drops_the_oldest_ended_runs(states: str, keep: int, dropped: list[str]) -> None:
    assert runs_to_drop(runs(*states), keep) == dropped


def test_keep_does_not_depend_on_the_order_runs_are_given() -> None:
    given = runs(*"eeeee")
    assert runs_to_drop(reversed(given), 2) == runs_to_drop(given, 2) == ["t2", "t3", "t4"]


def test_keep_must_keep_something() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        runs_to_drop(runs("e"), 0)


# -- the API body --


def test_schedule_period_takes_an_interval_or_a_cron_expression() -> None:
    assert SchedulePeriod.model_validate({"every": " 15m "}).rule == Interval(timedelta(minutes=15))
    cron = SchedulePeriod.model_validate({"cron": "0  3 * * *"})
    assert cron.cron == "0 3 * * *" and cron.rule == Cron("0 3 * * *")


@pytest.mark.parametrize(
    ("body", "where", "says"),
    [
        ({"every": "15x"}, ("every",), "'15x' is not an interval: expected an interval: a number and a unit"),
        ({"cron": "0 0 30 2 *"}, ("cron",), "Bad day-of-month"),
        ({}, (), "give exactly one of 'every'"),
        ({"every": "1h", "cron": "0 3 * * *"}, (), "give exactly one of 'every'"),
        ({"every": "1h", "at": "3am"}, ("at",), "Extra inputs"),
    ],
)
def test_schedule_period_errors_name_the_field_and_why(
    body: dict[str, str], where: tuple[str, ...], says: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        SchedulePeriod.model_validate(body)
    error = raised.value.errors()[0]
    assert error["loc"] == where and says in error["msg"]
