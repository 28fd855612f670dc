"""Build hook: the wheel carries the repository's example folders as package data (``vfedsim init``).

The metadata is in setup.cfg. ``scenarios/``, ``channels/``, ``experiments/`` and ``examples/`` stay at the top
of the repository, the one copy that is edited; building copies them into ``vfedsim/_examples/`` of the wheel
(see vfedsim/examples.py). Editable installs read them from the source tree instead.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

EXAMPLE_FOLDERS = ("scenarios", "channels", "experiments", "examples")


class BuildPyWithExamples(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "vfedsim" / "_examples"
        for name in EXAMPLE_FOLDERS:
            if (root / name).is_dir():
                shutil.copytree(root / name, target / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "runs", "sweeps"))


setup(cmdclass={"build_py": BuildPyWithExamples})
