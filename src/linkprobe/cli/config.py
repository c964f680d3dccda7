"""The config file of `check` and `crawl`: any flag of the command, so a CI step needs none.

`linkprobe.toml` (tables `[check]` and `[crawl]`), or `pyproject.toml` (`[tool.linkprobe.check]`,
`[tool.linkprobe.crawl]`), the first found from the working directory up; `--config FILE` names
one, `--no-config` reads none. A key is a flag's long name without its dashes (`allow-private =
true`, `fail-on = "broke"`, `include = ["^https://"]`, `inputs = ["docs/"]` for the positional
arguments): the keys are read off the command's parser, so every flag is a key and nothing else
is. Values go through the flag's own parsing (its type and choices); flags given on the command
line win over the file (a list flag such as --include replaces the file's list). Paths (the
values of flags whose metavar names a FILE or DIR, and inputs that are not URLs) are relative to
the file's folder.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from linkprobe.cli import UsageError

FILE_NAME = "linkprobe.toml"
COMMANDS = ("check", "crawl")
_OWN = ("config", "no_config")  # the flags that find the file are not in it


def add_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("config file")
    group.add_argument(
        "--config", metavar="FILE",
        help=f"read flags from this file (default: {FILE_NAME} or pyproject.toml's [tool.linkprobe], "
        "the first found from here up)",
    )  # fmt: skip
    group.add_argument("--no-config", action="store_true", help="read no config file")


def keys(command: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every key of the command's table: each flag's long name, and its positional arguments."""
    found = {}
    for action in command._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction) or action.dest in _OWN:
            continue
        name = max(action.option_strings, key=len).lstrip("-") if action.option_strings else action.dest
        found[name] = action
    return found


def find(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The first config file from `start` up, with its linkprobe tables."""
    for folder in (start, *start.parents):
        own = folder / FILE_NAME
        if own.is_file():
            return own, read(own)
        project = folder / "pyproject.toml"
        if project.is_file() and (tables := read(project)):
            return project, tables
    return None


def read(path: Path) -> dict[str, Any]:
    """The linkprobe tables of a file ({} for a pyproject.toml without [tool.linkprobe])."""
    import tomllib

    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise UsageError(f"cannot read --config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        data = tool.get("linkprobe", {}) if isinstance(tool, dict) else {}
    for name, table in data.items():
        if name not in COMMANDS or not isinstance(table, dict):
            where = "[tool.linkprobe]" if path.name == "pyproject.toml" else path.name
            raise UsageError(
                f"{path}: unknown key {name!r} in {where}: flags go in a table of their command, "
                f"{' or '.join(f'[{c}]' for c in COMMANDS)}"
            )
    return data


def apply(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Set on `args` what the config file says and the command line does not."""
    if args.command not in COMMANDS:
        return
    command = _command(parser, args.command)
    if not args.no_config:
        _merge(parser, command, args, argv)
    for action in command._actions:  # positional arguments are optional only to a config file
        if not action.option_strings and not getattr(args, action.dest):
            command.error(
                f"the following arguments are required: {action.metavar} "
                f"(or {action.dest} in a config file's [{args.command}])"
            )


def _merge(
    parser: argparse.ArgumentParser, command: argparse.ArgumentParser, args: argparse.Namespace,
    argv: Sequence[str],
) -> None:  # fmt: skip
    if args.config is not None:
        path = Path(args.config)
        found: tuple[Path, dict[str, Any]] | None = (path, read(path))
    else:
        found = find(Path.cwd())
    if found is None:
        return
    path, tables = found
    from_file = argparse.Namespace()
    for name, table in tables.items():  # every table is checked: a typo in [crawl] fails `check` too
        command_of = _command(parser, name)
        parsed = _explicit(command_of, tokens(command_of, table, path), path, name)
        from_file = parsed if name == args.command else from_file
    given = _explicit(command, list(argv)[list(argv).index(args.command) + 1 :], path, args.command)
    for dest, value in vars(from_file).items():
        if not hasattr(given, dest):
            setattr(args, dest, value)


def tokens(command: argparse.ArgumentParser, table: Mapping[str, Any], path: Path) -> list[str]:
    """The command line the table stands for: flags first, then `--` and the positional values."""
    known = keys(command)
    flags: list[str] = []
    positional: list[str] = []
    for key, value in table.items():
        action = known.get(key)
        if action is None:
            name = command.prog.split()[-1]
            raise UsageError(f"{path}: unknown key {key!r} in [{name}]{_hint(key, known, name)}")
        if action.nargs == 0:  # a switch: --allow-private
            if not isinstance(value, bool):
                raise UsageError(f"{path}: {key} must be true or false (got {value!r})")
            flags.extend([max(action.option_strings, key=len)] if value else [])
            continue
        values = [_text(path, key, v) for v in (value if isinstance(value, list) else [value])]
        values = [_path(v, action, path.parent) for v in values]
        if not action.option_strings:
            positional.extend(values)
            continue
        flag = max(action.option_strings, key=len)
        if isinstance(action, argparse._AppendAction):
            flags.extend(f"{flag}={v}" for v in values)  # --flag=value: a value may start with -
        elif len(values) != 1 or isinstance(value, bool):
            raise UsageError(f"{path}: {key} takes one value (got {value!r})")
        else:
            flags.append(f"{flag}={values[0]}")
    return [*flags, "--", *positional] if positional else flags


def _text(path: Path, key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UsageError(f"{path}: {key} takes text or numbers (got {value!r})")
    return str(value)


def _path(value: str, action: argparse.Action, folder: Path) -> str:
    """A path of the file, relative to its folder, as a path from the working directory."""
    from linkprobe.extract.document import SCHEME

    names_path = any(word in str(action.metavar or "") for word in ("FILE", "DIR"))
    if not names_path or value == "-" or SCHEME.match(value) or Path(value).is_absolute():
        return value
    return os.path.relpath(folder / value)


def _hint(key: str, known: Mapping[str, argparse.Action], command: str) -> str:
    import difflib

    close = difflib.get_close_matches(key.replace("_", "-"), list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f" (the keys are the flags of `linkprobe {command}`)"


def _command(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The command's parser, its flags declared (cli.build_parser declares only the one run)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            complete = getattr(found, "complete", None)
            return found if complete is None else complete()
    raise AssertionError(f"no command {name}")


def _explicit(
    command: argparse.ArgumentParser, words: list[str], path: Path, name: str
) -> argparse.Namespace:
    """Only what these words set: the command's parser with every default and requirement off."""
    saved = [(action, action.default, action.required) for action in command._actions]
    exit_on_error = command.exit_on_error
    try:
        for action in command._actions:
            action.default, action.required = argparse.SUPPRESS, False
        command.exit_on_error = False
        found, rest = command.parse_known_args(words)
    except argparse.ArgumentError as exc:
        raise UsageError(f"{path}: invalid value in [{name}]: {exc}") from None
    finally:
        for action, default, required in saved:
            action.default, action.required = default, required
        command.exit_on_error = exit_on_error
    if rest:
        raise UsageError(f"{path}: [{name}] has values no flag takes: {' '.join(rest)}")
    return found
