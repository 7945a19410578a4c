"""The README stays short and its links, like the changelog's and the benchmarks', lead somewhere.
(The docs site's own links are checked by `mkdocs build --strict` in `make test`.)"""

import re

import pytest

from tests.conftest import REPO

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_is_read_in_ten_minutes():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("page", ["README.md", "CHANGELOG.md", "benchmarks/README.md", "notebooks/README.md"])
def test_relative_links_lead_to_files(page):
    path = REPO / page
    targets = [t for t in LINK.findall(path.read_text()) if "://" not in t]
    missing = [t for t in targets if not (path.parent / t).exists()]
    assert not missing, f"{page} links to missing files: {missing}"
