"""mkdocs hooks (mkdocs.yml `hooks:`): pages generated at build time, and a nav that lists only pages that exist.

- ``reference/scenario.md``: `vfedsim.schemadoc.scenario_reference`, from the pydantic schema (never stale).
- ``reference/channels.md``: the repository's channels/README.md (the channel models reference), as it is.
- nav entries whose page is neither in docs/ nor generated are dropped, so that pages other work adds
  (docs/network.md, docs/studies.md, docs/channels.md) appear in the nav as soon as they exist, and a checkout
  without them still builds with ``--strict``.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = {"reference/scenario.md", "reference/channels.md"}


def _exists(page: str, docs_dir: Path) -> bool:
    return page in GENERATED or (docs_dir / page).is_file()


def _prune(items: list, docs_dir: Path) -> list:
    out = []
    for item in items:
        if isinstance(item, str):
            if _exists(item, docs_dir):
                out.append(item)
            continue
        (title, value), = item.items()
        if isinstance(value, list):
            kept = _prune(value, docs_dir)
            if kept:
                out.append({title: kept})
        elif _exists(value, docs_dir):
            out.append(item)
    return out


def on_config(config, **kwargs):
    config["nav"] = _prune(config["nav"] or [], Path(config["docs_dir"]))
    return config


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    from vfedsim.schemadoc import scenario_reference

    files.append(File.generated(config, "reference/scenario.md", content=scenario_reference()))
    channels = (ROOT / "channels" / "README.md").read_text()
    files.append(File.generated(config, "reference/channels.md", content=channels))
    return files
