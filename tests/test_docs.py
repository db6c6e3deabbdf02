"""The user documentation stays usable: every relative link in README.md and docs/*.md (markdown links and
images) reaches an existing file, and each #anchor into a markdown file an existing heading under GitHub's
slug rule; the README stays short; its tools table names every public tools/*.py. No network."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the target ends at whitespace (an optional "title" follows) or ")"
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def _prose(text: str) -> str:
    """The text outside fenced code blocks and code spans, where links are links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text (markup removed), lower-cased, every character
    that is not a letter, digit, space, hyphen or underscore dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"(\*\*|\*)(\S(?:.*?\S)?)\1", r"\2", text)  # emphasis markers around words
    text = re.sub(r"(?<!\w)(__|_)(\S(?:.*?\S)?)\1(?!\w)", r"\2", text)  # not inside words: a_b_c stays
    text = unicodedata.normalize("NFC", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a markdown file; repeated slugs get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        slug = github_slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(page.read_text(encoding="utf-8"))) if not EXTERNAL.match(t)]


def test_slug_rule_matches_github():
    assert github_slug("Data policy, checkpoint safety and resume") == "data-policy-checkpoint-safety-and-resume"
    assert github_slug("Test time at ~2000 boxes per image") == "test-time-at-2000-boxes-per-image"
    assert github_slug("The `docs` extra / **make** target") == "the-docs-extra--make-target"
    assert github_slug("Inside detseg/models") == "inside-detsegmodels"
    assert github_slug("shape_crops_resnet18 and _emphasis_") == "shape_crops_resnet18-and-emphasis"


def test_pages_exist_and_link_checker_sees_links():
    assert (ROOT / "docs" / "index.md").is_file()
    assert any("docs/index.md" in link for link in relative_links(ROOT / "README.md"))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page: Path):
    broken = []
    for link in relative_links(page):
        path_part, _, anchor = link.partition("#")
        target = (page.parent / path_part).resolve() if path_part else page
        if not target.exists():
            broken.append(f"{link}: no file {target}")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading with anchor #{anchor} in {target.name}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_links_stay_inside_the_repository():
    for page in PAGES:
        for link in relative_links(page):
            path_part = link.partition("#")[0]
            if path_part:
                target = (page.parent / path_part).resolve()
                assert target.is_relative_to(ROOT), f"{page.name}: {link} leaves the repository"


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines, at most {README_MAX_LINES}"


def _readme_tools_table() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Tools\s*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert section, "README.md has no '## Tools' section"
    return "\n".join(line for line in section.group(1).splitlines() if line.lstrip().startswith("|"))


def test_readme_tools_table_names_every_public_tool():
    table = _readme_tools_table()
    tools = sorted(p.name for p in (ROOT / "tools").glob("*.py") if not p.name.startswith("_"))
    assert tools, "no tools found"
    missing = [name for name in tools if f"tools/{name}" not in table]
    assert not missing, f"README.md's tools table does not name: {missing}"


def test_readme_tools_table_names_every_detseg_command():
    from detseg.cli.main import COMMANDS

    table = _readme_tools_table()
    missing = [name for name in COMMANDS if f"`detseg {name}" not in table]
    assert not missing, f"README.md's tools table does not name: {missing}"
