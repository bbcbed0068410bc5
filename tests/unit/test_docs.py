"""The README and docs/ document exactly what the code has, and hold together."""

import re

from fakehosts import REPO

from kubelab.settings.defaults import settings_table

TABLE = re.compile(r"<!-- settings table:[^\n]*-->\n(.*?)\n<!-- end of settings table -->", re.S)
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")


def anchors(path):
    """The anchors GitHub gives a Markdown file's headings (code blocks hold none)."""
    seen = {}
    for heading in re.findall(r"^#+ (.+)$", FENCE.sub("", path.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        yield slug if seen[slug] == 0 else f"{slug}-{seen[slug]}"


def test_readme_settings_table_matches_the_code():
    readme = README.read_text()
    assert TABLE.search(readme)[1] == settings_table(), "run: make docs"


def test_readme_quick_start_commands_exist_in_the_makefile():
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test", "lab-up", "lab-down", "lab-ssh", "bench", "conformance"):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_every_make_target_the_docs_name_exists():
    makefile = (REPO / "Makefile").read_text()
    for doc in [README, *DOCS]:
        for target in set(re.findall(r"`make ([\w-]+)", doc.read_text())):
            assert re.search(rf"^{target}:", makefile, re.M), (doc.name, target)


def test_every_script_the_docs_name_exists():
    for doc in [README, *DOCS]:
        for script in set(re.findall(r"\b(?:deploys|kubelab)/[\w/]+\.py\b", doc.read_text())):
            assert (REPO / script).is_file(), (doc.name, script)


def test_readme_is_one_screenful_of_sections():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move details to docs/"


def test_every_relative_link_points_to_an_existing_file_and_heading():
    assert DOCS, "docs/*.md"
    for doc in [README, *DOCS]:
        for target in LINK.findall(FENCE.sub("", doc.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (doc.parent / path).resolve() if path else doc
            assert linked.exists(), f"{doc.name}: {target}: no such file"
            if anchor and linked.suffix == ".md":
                assert anchor in set(anchors(linked)), f"{doc.name}: {target}: no such heading"


def test_the_readme_links_every_doc():
    links = set(LINK.findall(README.read_text()))
    for doc in DOCS:
        assert f"docs/{doc.name}" in links, doc.name


def test_dated_figures_live_in_benchmarks_only():
    """Dated figures go to benchmarks.md; the README's one exception is the last whole
    conformance run, whose date the README gives (with the command that reproduces it)."""
    for doc in [README, *DOCS]:
        text = doc.read_text()
        if doc is README:
            conformance = [p for p in text.split("\n\n") if p.startswith("Conformance: on ")]
            assert len(conformance) == 1 and "make conformance" in conformance[0]
            text = text.replace(conformance[0], "")
        if doc.name != "benchmarks.md":
            assert not DATE.findall(text), f"{doc.name}: dates go to benchmarks.md"
    assert DATE.search((REPO / "docs" / "benchmarks.md").read_text())
