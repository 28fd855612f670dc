"""The docs site: the scenario reference is generated from the schema, and `mkdocs build --strict` passes
(mkdocs and mkdocs-material come with the test extra, so CI builds the site)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vfedsim.cli import _scenario_keys
from vfedsim.schemadoc import scenario_reference

REPO = Path(__file__).resolve().parent.parent


def test_the_scenario_reference_lists_every_key() -> None:
    text = scenario_reference()
    rows = {line.split("`")[1] for line in text.splitlines() if line.startswith("| `")}
    leaves = {key.rsplit(".", 1)[-1] for key in _scenario_keys()}
    assert leaves <= rows, sorted(leaves - rows)
    assert "## `world.road (name: urban-grid)`" in text and "## `strategy (name: async)`" in text
    assert "| `length_m` | number > 0 | 2000 |" in text  # type, constraint and default from the schema
    assert "| `tracks` | one of: `selected`, `all`, `none` | selected |" in text


def _build(tmp_path: Path, repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(repo / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    out = _build(tmp_path, REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    site = tmp_path / "site"
    for page in ("getting-started", "reference/scenario", "reference/channels", "models", "learning", "strategies",
                 "sweeps", "outputs", "extending", "benchmarks", "commands"):
        assert (site / page / "index.html").is_file(), page
    assert "world.channel" in (site / "reference" / "scenario" / "index.html").read_text()


def test_pages_that_other_work_adds_join_the_nav_when_they_exist(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "docs", copy / "docs")
    shutil.copy(REPO / "mkdocs.yml", copy / "mkdocs.yml")
    shutil.copytree(REPO / "channels", copy / "channels")
    (copy / "docs" / "studies.md").write_text("# Studies\n\nA page another issue writes.\n")
    out = _build(tmp_path, copy)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "studies/" in (tmp_path / "site" / "index.html").read_text()
