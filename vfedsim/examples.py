"""The packaged examples: scenarios, channel profiles, experiments and example scripts (``vfedsim init``).

The repository's top-level ``scenarios/``, ``channels/``, ``experiments/`` and ``examples/`` folders are the only
copy in the source tree. A wheel (``pip install .``, ``pip wheel``) carries them as data files (setup.cfg's
``[options.data_files]``), installed under ``<prefix>/share/vfedsim/``; in a source checkout or an editable
install they are read from the repository itself. `examples_root` finds whichever is there.
"""
from __future__ import annotations

import shutil
import site
import sys
import sysconfig
from pathlib import Path

from .errors import ScenarioError, VfedsimError

__all__ = ["EXAMPLE_FOLDERS", "examples_root", "copy_examples"]

EXAMPLE_FOLDERS = ("scenarios", "channels", "experiments", "examples")
"""Folders copied by ``vfedsim init`` (each one as it is in the repository)."""

_SOURCE = Path(__file__).resolve().parent.parent


def installed_roots() -> list[Path]:
    """Where a wheel install puts the data files: ``<prefix>/share/vfedsim`` for the environment's prefix (a venv
    or the system) and for the user base (``pip install --user``)."""
    prefixes = [Path(sysconfig.get_path("data")), Path(sys.prefix)]
    try:
        prefixes.append(Path(site.getuserbase()))
    except Exception:  # pragma: no cover - site without a user base
        pass
    seen: list[Path] = []
    for prefix in prefixes:
        root = prefix / "share" / "vfedsim"
        if root not in seen:
            seen.append(root)
    return seen


def examples_root() -> Path:
    """The folder holding `EXAMPLE_FOLDERS`: the source tree (a checkout or an editable install), else the
    installed ``share/vfedsim`` (a wheel install)."""
    for root in (_SOURCE, *installed_roots()):
        if (root / "scenarios" / "quickstart.yaml").is_file() and (root / "channels").is_dir():
            return root
    raise VfedsimError("this vfedsim installation carries no example scenarios (no share/vfedsim under "
                       f"{sys.prefix}); reinstall it from a wheel or sdist: pip install vfedsim")


def _ignore(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n in ("__pycache__", ".ipynb_checkpoints", "runs", "sweeps") or n.endswith(".pyc")]


def copy_examples(dest: str | Path) -> list[Path]:
    """Copy the example folders into ``dest`` (created; must not exist or be an empty directory); returns the
    files written. Raises `ScenarioError` on ``DIR`` when ``dest`` holds anything."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ScenarioError("DIR", f"{str(dest)!r} exists and is not an empty directory; choose a new folder "
                                   "(nothing is overwritten)")
    root = examples_root()
    dest.mkdir(parents=True, exist_ok=True)
    for name in EXAMPLE_FOLDERS:
        if (root / name).is_dir():
            shutil.copytree(root / name, dest / name, ignore=_ignore, dirs_exist_ok=True)
    return sorted(p for p in dest.rglob("*") if p.is_file())
