"""mkdocs hook: the Changelog page shows CHANGELOG.md at the repository root, the history's one home."""

from pathlib import Path


def on_page_read_source(page, config):
    if page.file.src_uri == "changelog.md":
        return (Path(config.config_file_path).parent / "CHANGELOG.md").read_text(encoding="utf-8")
    return None
