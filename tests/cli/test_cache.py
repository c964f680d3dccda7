"""`check --cache FILE --max-age DURATION` against the loopback target: ok results reused within
max-age (no request reaches the server), probed again after it, broken ones always probed."""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from linkprobe.cli.cache import duration
from tests.cli.test_check import check
from tests.conftest import Target


def age(cache: Path, by: timedelta) -> None:
    """Make every entry of the cache file older, as time passing would."""
    entries = [json.loads(line) for line in cache.read_text().splitlines()]
    for entry in entries:
        entry["checked_at"] = (datetime.fromisoformat(entry["checked_at"]) - by).isoformat()
    cache.write_text("".join(json.dumps(entry) + "\n" for entry in entries))


async def test_ok_results_are_reused_within_max_age_and_probed_after_it(
    target: Target, tmp_path: Path
) -> None:
    path = f"/answer/{uuid.uuid4().hex}"
    url, cache = target.url(path), tmp_path / "links.cache"
    first = await check("-f", "json", "--cache", str(cache), "--max-age", "1h", url)
    assert first.code == 0 and target.hits[path] == 1
    probed = json.loads(first.out)[0]
    assert "cached_from" not in probed

    age(cache, timedelta(minutes=50))
    again = await check("-f", "json", "--cache", str(cache), "--max-age", "1h", url)
    assert target.hits[path] == 1  # not probed: its result is 50 minutes old
    reused = json.loads(again.out)[0]
    assert reused["cached_from"] == str(cache) and reused["status_code"] == 200
    original = datetime.fromisoformat(probed["checked_at"]) - timedelta(minutes=50)
    assert datetime.fromisoformat(reused["checked_at"]) == original  # when it was really checked
    table = await check("--cache", str(cache), "--max-age", "1h", url)
    assert "1 URLs: 1 ok, 0 broken; 1 from the cache" in table.out

    later = await check("-f", "json", "--cache", str(cache), "--max-age", "30m", url)
    assert target.hits[path] == 2  # older than 30 minutes: probed again
    assert "cached_from" not in json.loads(later.out)[0]
    fresh = await check("-f", "json", "--cache", str(cache), "--max-age", "30m", url)
    assert target.hits[path] == 2 and json.loads(fresh.out)[0]["cached_from"] == str(cache)


async def test_broken_results_and_other_options_are_probed_again(target: Target, tmp_path: Path) -> None:
    name = uuid.uuid4().hex
    path, cache = f"/answer/{name}", tmp_path / "links.cache"
    target.answers[name] = 500
    for expected_hits in (1, 2):
        run = await check("--cache", str(cache), target.url(path))
        assert run.code == 2 and target.hits[path] == expected_hits  # a broken link is never reused
    target.answers[name] = 200
    await check("--cache", str(cache), target.url(path))
    await check("--cache", str(cache), target.url(path))
    assert target.hits[path] == 3  # ok now, and reused (max-age 1d by default)
    await check("--cache", str(cache), "--method", "HEAD", target.url(path))
    assert target.hits[path] == 4  # probed with other options: not the same verdict
    target.answers[name] = 404
    run = await check("--cache", str(cache), "--max-age", "0s", target.url(path))
    assert run.code == 2 and target.hits[path] == 5


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("12h", 43200), ("1d", 86400), ("2w", 1209600), ("1h30m", 5400), ("0s", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1x", "h", "1h 30", "-1d", "1d2", "45", "1.5h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a duration"):
        duration(text)


async def test_bad_cache_flags_exit_3(target: Target, tmp_path: Path) -> None:
    run = await check("--max-age", "1d", target.url("/status/200"))
    assert run.code == 3 and "--max-age needs --cache FILE" in run.err
    run = await check("--cache", str(tmp_path / "c"), "--max-age", "soon", target.url("/status/200"))
    assert run.code == 3 and "'soon' is not a duration" in run.err
    run = await check("--cache", str(tmp_path / "no" / "such" / "c"), target.url("/status/200"))
    assert run.code == 3 and "cannot write --cache" in run.err


async def test_a_run_with_headers_is_refused_and_writes_no_cache_file(target: Target, tmp_path: Path) -> None:
    """Header values are often credentials: not even their digest goes into a cache file."""
    cache = tmp_path / "links.cache"
    url = target.url(f"/answer/{uuid.uuid4().hex}")
    run = await check("--cache", str(cache), "-H", "Authorization: Bearer abc123", url)
    assert run.code == 3 and "--cache cannot be used with -H/--header" in run.err
    assert not cache.exists()
