"""The changes of two runs of 1,000,000 URLs (linkprobe/changes.py `merge`): time and peak memory.

Both runs are streamed in URL order (as a store pages them), each URL's result as its JSON form
(`Seen.of_dict`, what a store holds); a tenth of the URLs differ between the runs (broke, fixed,
moved) and 1% are only in one of them. Figures: seconds, URLs per second, and the peak RSS above
the interpreter's before the merge (which should not grow with the runs).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from typing import Any

from linkprobe.changes import Seen, counts, merge

URLS = int(os.environ.get("BENCH_CHANGE_URLS", "1000000"))


def run(second: bool) -> Iterator[Seen]:
    for n in range(URLS):
        if (n % 100 == 7 and second) or (n % 100 == 8 and not second):
            continue  # gone from the second run, or new in it
        url = f"https://example.com/page/{n:09d}"
        moved = second and n % 10 == 3
        broken = (n % 10 == 1 and not (second and n % 20 == 1)) or (second and n % 20 == 2)
        data: dict[str, Any] = {
            "url": url, "ok": not broken, "status_code": 404 if broken else 200,
            "final_url": url + "/" if moved else url, "error": None,
        }  # fmt: skip
        yield Seen.of_dict(data)


def main() -> None:
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    tally = counts(compared.change for compared in merge(run(False), run(True)))
    seconds = time.perf_counter() - started
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kib
    print(f"changes of two runs of {URLS:,} URLs: {seconds:.2f} s ({URLS / seconds:,.0f} URLs/s), "
          f"peak RSS +{grown_kib / 1024:.1f} MiB; {tally}")  # fmt: skip


if __name__ == "__main__":
    main()
