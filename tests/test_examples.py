"""Examples that travel: `vfedsim init` copies the packaged scenarios, channels, experiments and example
scripts; a wheel carries them; the example script runs (CI executes it here)."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vfedsim.cli import main
from vfedsim.examples import EXAMPLE_FOLDERS, examples_root

REPO = Path(__file__).resolve().parent.parent


def files_under(root: Path, folders=EXAMPLE_FOLDERS) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for name in folders for p in sorted((root / name).rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_init_copies_the_repository_folders(tmp_path: Path, capsys) -> None:
    assert examples_root() == REPO  # an editable install reads the source tree
    assert main(["init", str(tmp_path / "w")]) == 0
    assert "next: cd" in capsys.readouterr().out
    assert files_under(tmp_path / "w") == files_under(REPO)
    assert (tmp_path / "w" / "scenarios" / "traces" / "grid-small.fcd.xml.gz").is_file()
    assert main(["init", str(tmp_path / "w")]) == 2  # never overwrites
    assert "not an empty directory" in capsys.readouterr().err


def test_an_initialised_folder_validates_and_finds_its_own_channels(tmp_path: Path, capsys, monkeypatch) -> None:
    assert main(["init", str(tmp_path / "w")]) == 0
    own = tmp_path / "w" / "channels" / "my-profile.yaml"
    own.write_text((tmp_path / "w" / "channels" / "log-distance.yaml").read_text())
    monkeypatch.chdir(tmp_path / "w")
    capsys.readouterr()
    for name in ("quickstart", "tiny", "urban", "sumo-grid"):
        assert main(["validate", f"scenarios/{name}.yaml"]) == 0
    assert main(["validate", "scenarios/tiny.yaml", "--set", "world.channel.profile=my-profile"]) == 0
    assert main(["validate", *(str(p) for p in sorted(Path("experiments").glob("*.yaml")))]) == 0
    out = capsys.readouterr().out
    assert out.count("ok: experiment") == len(list(Path("experiments").glob("*.yaml")))


@pytest.mark.slow
def test_the_example_script_runs_and_draws_its_figure(tmp_path: Path) -> None:
    env = {**os.environ, "VFEDSIM_DATA_WORKERS": "1"}  # VFEDSIM_CACHE: the session's (conftest)
    out = subprocess.run([sys.executable, str(REPO / "examples" / "custom_figure.py"), str(tmp_path / "r")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "mean.accuracy" in out.stdout and (tmp_path / "r" / "custom_upload_time.png").stat().st_size > 5000
    assert (tmp_path / "r" / "summary.json").is_file()


@pytest.mark.slow
def test_a_wheel_carries_the_examples_unchanged(tmp_path: Path) -> None:
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(REPO)], capture_output=True, text=True, timeout=600,
                           cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("vfedsim-*.whl"))
    prefix = "vfedsim-0.1.0.data/data/share/vfedsim/"  # setup.cfg [options.data_files]
    with zipfile.ZipFile(wheel) as zf:
        packaged = {n[len(prefix):]: zf.read(n) for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/")}
    # the one copy, taken at build time; a file that the data_files globs miss fails here
    assert packaged == files_under(REPO)
