"""Every link into docs/ resolves: module docstrings point to their spec by `docs/x.md#anchor`,
and a renamed heading must not leave them pointing nowhere."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
DOCS_MENTION = re.compile(r"(?<![\w/.])((?:\.\./)?docs/[\w\-]+\.md)(?:#([\w\-]+))?")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but '-' and '_' dropped."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a markdown page's headings (repeats get -1, -2, ... as on GitHub)."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def broken_links(source: Path) -> list[str]:
    """The links in `source` (markdown links, and docs/x.md[#anchor] mentions) that miss."""
    text, bad = source.read_text(), []
    targets: list[tuple[Path, str]] = []
    if source.suffix == ".md":
        for link in MARKDOWN_LINK.findall(text):
            if re.match(r"[a-z]+:", link):
                continue  # http:, mailto:
            path, _, anchor = link.partition("#")
            targets.append((source.parent / path if path else source, anchor))
    for path, anchor in DOCS_MENTION.findall(text):
        targets.append((ROOT / path.removeprefix("../"), anchor))
    for target, anchor in targets:
        name = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
        if not target.exists():
            bad.append(str(name))
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            bad.append(f"{name}#{anchor}")
    return bad


SOURCES = sorted(
    [*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("src/**/*.py")],
    key=lambda p: str(p),
)


def test_slug_matches_github() -> None:
    assert github_slug("GRU4Rec — Hidasi et al., ICLR 2016") == "gru4rec--hidasi-et-al-iclr-2016"
    assert github_slug("LINet's Table II") == "linets-table-ii"


def test_a_missing_anchor_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Part one\n\nsee [x](#part-one) and [y](#part-two)\n")
    assert broken_links(page) == [f"{page}#part-two"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(source: Path) -> None:
    assert broken_links(source) == []
