"""The README stays short, and no link in the README or docs/ is broken or points outside the repo."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
README_MAX_BYTES = 12 * 1024
LOOPBACK = {"127.0.0.1"}  # the only host an example URL may name
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s`'\"<>)\]]*", re.I)


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "bench" / "README.md"]


def _tokens(text: str):
    for tok in MarkdownIt("commonmark").parse(text):
        yield tok
        yield from tok.children or ()


def links(text: str) -> list[str]:
    """Every link and image target in a Markdown text."""
    out = []
    for tok in _tokens(text):
        if tok.type == "link_open":
            out.append(tok.attrs["href"])
        elif tok.type == "image":
            out.append(tok.attrs["src"])
    return out


def slugs(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text."""
    out, tokens = set(), list(MarkdownIt("commonmark").parse(text))
    for tok, nxt in zip(tokens, tokens[1:]):
        if tok.type == "heading_open":
            title = re.sub(r"[^\w\- ]", "", nxt.content.lower())
            out.add(title.replace(" ", "-"))
    return out


def link_problems(path: Path, text: str) -> list[str]:
    """Why links of `path` (a Markdown file with `text`) are broken or leave the repo; [] if none."""
    problems = []
    for url in URL.findall(text):
        if urlsplit(url).hostname not in LOOPBACK:
            problems.append(f"{url}: a URL outside the repo")
    for target in links(text):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc:
            if parts.hostname not in LOOPBACK:
                problems.append(f"{target}: a link outside the repo")
            continue
        dest = (path.parent / unquote(parts.path)).resolve() if parts.path else path
        if not dest.is_relative_to(ROOT):
            problems.append(f"{target}: leaves the repo")
        elif not dest.is_file():
            problems.append(f"{target}: no such file in the repo")
        elif parts.fragment and dest.suffix == ".md" and parts.fragment not in slugs(dest.read_text()):
            problems.append(f"{target}: no heading #{parts.fragment} in {dest.relative_to(ROOT)}")
    return problems


def test_the_readme_is_at_most_12_kb():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move depth to docs/ (limit {README_MAX_BYTES})"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_to_a_file_in_the_repo_and_none_leaves_it(path):
    assert path.is_file(), path
    assert link_problems(path, path.read_text()) == []


@pytest.mark.parametrize("snippet, problem", [
    ("see [the site](https://example.com/)", "outside the repo"),
    ("see <http://example.com/x>", "outside the repo"),
    ("a bare https://example.org/page in the text", "outside the repo"),
    ("see [a file](docs/nothing-here.md)", "no such file"),
    ("see [up](../../etc/passwd)", "leaves the repo"),
    ("see [a section](docs/protocol.md#no-such-heading)", "no heading"),
])
def test_the_link_check_finds_a_broken_or_outside_link(snippet, problem):
    found = link_problems(ROOT / "README.md", snippet)
    assert found and problem in found[0], found


def test_the_link_check_passes_loopback_examples_and_good_links():
    text = ("metrics at `http://127.0.0.1:9464/metrics`; [protocol](docs/protocol.md#framing), "
            "[config](config.toml), [this file](#two-commands)\n\n## Two commands\n")
    assert link_problems(ROOT / "README.md", text) == []
