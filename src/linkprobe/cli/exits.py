"""The exit codes of `linkprobe`, declared once: the commands return them, `check --help` and the
README's table list them from here (tests/cli/test_exits.py holds the README to it)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Each code with what it means (its `meaning`), in the order the help lists them."""

    OK = 0
    BROKEN = 2
    USAGE = 3
    INTERRUPTED = 130
    FAILURE = 1

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "every URL is ok (unsupported redirects, e.g. to mailto:, are allowed)",
    ExitCode.BROKEN: "at least one URL is broken (or unsupported, with --fail-unsupported); with "
    "--fail-on broke, new or changed, a broken URL of that change since the --baseline (broke: one that "
    "was ok in it)",
    ExitCode.USAGE: "bad usage: unknown flag, bad flag value, missing input file, unwritable --output, "
    "bad config file; one sentence on stderr naming the flag (or the LINKPROBE_* variable, or the key)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C): the results so far are written in the chosen format, "
    "the URLs not finished are cancelled",
    ExitCode.FAILURE: "unexpected failure",
}


def exit_codes_help(width: int = 96) -> str:
    """The `exit codes:` section of `check --help`."""
    import textwrap

    lines = ["exit codes:"]
    for code in ExitCode:
        wrapped = textwrap.wrap(code.meaning, width - 7)
        lines.append(f"  {code.value:<4} {wrapped[0]}")
        lines.extend(f"       {line}" for line in wrapped[1:])
    return "\n".join(lines) + "\n"
