"""`check` inputs that are documents: files, directories and globs turned into unique URLs,
each with the places it was found. Local files (file:// links) are checked on disk here.

Directories and globs skip hidden files and those git ignores, as lychee does.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from linkprobe.cli import UsageError
from linkprobe.engine import ErrorKind, ProbeResult, failed
from linkprobe.engine.urls import url_lines
from linkprobe.extract import Kind, LinkFilter, Sources, extract, kind_for_name, probe_target, supported
from linkprobe.extract.document import SCHEME  # an argument that starts with a scheme is a URL, never a file

GLOB_CHARS = frozenset("*?[")


@dataclass
class Collected:
    """Unique URLs in first-seen order; where each was found; the anchors of local documents."""

    urls: list[str] = field(default_factory=list)
    sources: dict[str, Sources] = field(default_factory=dict)
    anchors: dict[str, set[str]] = field(default_factory=dict)  # local document path -> its anchors

    def add(self, url: str, document: str | None = None, line: int = 0) -> None:
        sources = self.sources.get(url)
        if sources is None:
            self.urls.append(url)
            sources = self.sources[url] = Sources()
        if document is not None:
            sources.add(document, line)


@dataclass
class DocumentOptions:
    input_format: Kind | None = None
    base_url: str | None = None
    check_fragments: bool = False
    filter: LinkFilter = field(default_factory=LinkFilter)
    root_dir: Path | None = None  # root-relative links (/about.html) of local documents resolve here


def _ignored_by_git(root: Path, files: list[Path]) -> set[Path]:
    """The files git ignores under `root`; none when git or a work tree is missing."""
    if not files:
        return set()
    import subprocess  # folders only: a URL check does without it

    if root.is_file():
        root = root.parent
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "check-ignore", "--stdin", "-z"],
            input=b"\0".join(str(path.resolve()).encode() for path in files),
            capture_output=True, check=False, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return set()
    if done.returncode not in (0, 1):  # 128: not a work tree
        return set()
    return {Path(name.decode()) for name in done.stdout.split(b"\0") if name}


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def walk(root: Path, forced: Kind | None) -> list[Path]:
    """Documents under a directory: known extensions (any file when a format is forced), no hidden
    files or folders, nothing git ignores; sorted for a stable order."""
    found = [
        Path(folder, name)
        for folder, folders, names in os.walk(root)
        for name in names
        if not name.startswith(".") and (forced is not None or kind_for_name(name) is not None)
    ]
    found = [path for path in found if _visible(path, root)]
    ignored = _ignored_by_git(root, found)
    return sorted(path for path in found if path.resolve() not in ignored)


def expand(pattern: str, forced: Kind | None) -> list[Path]:
    paths = sorted(Path(name) for name in glob.glob(pattern, recursive=True) if Path(name).is_file())
    ignored = (
        _ignored_by_git(Path(os.path.commonpath([p.resolve() for p in paths])), paths) if paths else set()
    )
    return [path for path in paths if path.resolve() not in ignored]


def document_base(path: Path, root: Path | None, base_url: str | None) -> str:
    """Where a local document's relative links resolve: under --base-url (at the document's path
    relative to the directory given), else the file itself."""
    if base_url is None:
        return path.resolve().as_uri()
    relative = path.relative_to(root).as_posix() if root is not None else path.name
    return urljoin(base_url if base_url.endswith("/") else base_url + "/", relative)


def rooted(url: str, root: Path | None) -> str:
    """A file:// link outside `root` (a root-relative link, `/about.html`, resolves to the
    filesystem's root) made relative to `root`, as lychee's --root-dir does."""
    if root is None or not url.startswith("file:"):
        return url
    parts = urlsplit(url)
    path = Path(unquote(parts.path))
    if path.is_relative_to(root):
        return url
    moved = (root / path.relative_to(path.anchor)).as_uri()
    return moved + (f"#{parts.fragment}" if parts.fragment else "")


def add_document(collected: Collected, path: Path, kind: Kind, base: str, options: DocumentOptions) -> None:
    found = extract(path.read_bytes(), kind, base)
    collected.anchors[str(path.resolve())] = found.anchors
    for link in found.links:
        url = rooted(link.url, options.root_dir)
        if supported(url) and not (options.check_fragments and url.startswith("file:")):
            url = probe_target(url)  # a fragment never reaches a server: one probe per page
        if options.filter(url):
            collected.add(url, str(path), link.line)


def add_input(collected: Collected, item: str, stdin: TextIO, options: DocumentOptions) -> None:
    """One command-line input: -, a directory, a glob, a document, a URL list, or a URL."""
    if item == "-":
        for url in url_lines(stdin):
            collected.add(url)
        return
    path = Path(item)
    if SCHEME.match(item):
        collected.add(item)  # a URL, judged (maybe invalid_url or unsupported) like any other
    elif path.is_dir():
        for found in walk(path, options.input_format):
            _add_file(collected, found, path, options)
    elif path.is_file():
        _add_file(collected, path, None, options)
    elif GLOB_CHARS.intersection(item):
        if not (matches := expand(item, options.input_format)):
            raise UsageError(f"no file matches {item}")
        for found in matches:
            _add_file(collected, found, None, options)
    else:
        raise UsageError(f"no such file: {item} (an argument without a scheme such as https:// is a file)")


def _add_file(collected: Collected, path: Path, root: Path | None, options: DocumentOptions) -> None:
    kind = options.input_format or kind_for_name(path.name)
    if kind is None:  # no document extension: a URL list, one URL a line (as before documents)
        with open(path, encoding="utf-8", errors="replace") as handle:
            for url in url_lines(handle):
                collected.add(url)
        return
    add_document(collected, path, kind, document_base(path, root, options.base_url), options)


def collect(inputs: Iterable[str], stdin: TextIO, options: DocumentOptions) -> Collected:
    collected = Collected()
    for item in inputs:
        add_input(collected, item, stdin, options)
    return collected


def _local_anchors(path: Path, collected: Collected) -> set[str]:
    key = str(path.resolve())
    if key not in collected.anchors:
        kind = kind_for_name(path.name)
        collected.anchors[key] = extract(path.read_bytes(), kind).anchors if kind else set()
    return collected.anchors[key]


def check_local(url: str, index: int, collected: Collected, fragments: bool) -> ProbeResult:
    """A file:// link checked on disk: the file (or folder) must exist, and its anchor if asked."""
    target, fragment = urldefrag(url)
    path = Path(unquote(urlsplit(target).path))
    if not path.exists():
        return failed(url, index, ErrorKind.MISSING_FILE, f"no such file: {path}")
    if fragments and fragment and path.is_file() and unquote(fragment) not in _local_anchors(path, collected):
        return failed(url, index, ErrorKind.MISSING_FRAGMENT, f"{path.name} has no anchor #{fragment}")
    return ProbeResult(url, index, ok=True, final_url=url)


def known_results(collected: Collected, fragments: bool) -> Iterator[tuple[int, ProbeResult | str]]:
    """Each URL by index: a result when it is judged here (a local file), else the URL to probe
    (the engine reports links of another scheme, mailto:..., `unsupported`)."""
    for index, url in enumerate(collected.urls):
        if url.startswith("file:"):
            yield index, check_local(url, index, collected, fragments)
        else:
            yield index, url
