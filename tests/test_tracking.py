"""TensorBoard logging: every rounds.csv scalar per round, at simulated time, and the config; read back with
tbparse (TensorBoard's event files)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vfedsim
from vfedsim.cli import main
from vfedsim.tracking import column_of_tag, log_run_dir, tag_of_column

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "scenarios" / "tiny.yaml"
tbparse = pytest.importorskip("tbparse")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning",
                                        "ignore:The inplace keyword")


def read_scalars(log_dir: Path) -> pd.DataFrame:
    reader = tbparse.SummaryReader(str(log_dir), extra_columns={"wall_time"})
    return reader.scalars


def check_against_rounds(scalars: pd.DataFrame, rounds: pd.DataFrame) -> None:
    numeric = [c for c in rounds.columns if c != "round" and pd.api.types.is_numeric_dtype(rounds[c])]
    logged = {column_of_tag(t) for t in scalars["tag"]}
    assert logged == set(numeric)  # every scalar column, nothing else
    for _, row in rounds.iterrows():
        got = scalars[scalars["step"] == int(row["round"])]
        assert np.allclose(got["wall_time"], row["sim_time_s"])  # walltime is simulated time
        values = dict(zip(got["tag"].map(column_of_tag), got["value"]))
        for column in numeric:
            if pd.isna(row[column]):
                assert column not in values  # an empty cell is not logged
            else:
                assert np.isclose(values[column], row[column], rtol=1e-6, atol=1e-6), column


def test_tags_map_back_to_columns() -> None:
    for column in ("maneuver.accuracy", "cum_bytes_up", "suite.camera-only.mean.accuracy", "bytes_up.trunk.lora"):
        assert column_of_tag(tag_of_column(column)) == column
    assert tag_of_column("maneuver.accuracy") == "maneuver/accuracy" and tag_of_column("round") == "run/round"


def test_a_run_logs_every_rounds_scalar_and_its_config(tmp_path: Path) -> None:
    scenario = vfedsim.load_scenario(TINY, overrides=["strategy.rounds=2", "output.tensorboard=true"])
    result = vfedsim.run(scenario, out_dir=tmp_path / "r", progress=False)
    log_dir = tmp_path / "r" / "tensorboard"
    check_against_rounds(read_scalars(log_dir), result.rounds)
    text = tbparse.SummaryReader(str(log_dir)).text
    assert text["tag"].tolist() == ["config"] and "name: tiny" in text["value"].iloc[0]


def test_cli_tensorboard_dir_and_a_finished_run(tmp_path: Path, tiny_run: Path, capsys) -> None:
    code = main(["run", str(TINY), "--out", str(tmp_path / "r"), "-q", "--set", "strategy.rounds=1",
                 "--tensorboard", str(tmp_path / "tb")])
    assert code == 0
    check_against_rounds(read_scalars(tmp_path / "tb" / "r"), pd.read_csv(tmp_path / "r" / "rounds.csv"))
    # a finished run logged from its files: the same scalars
    log_run_dir(tiny_run, tmp_path / "tb2")
    log_run_dir(tiny_run, tmp_path / "tb2")  # again: replaces, does not duplicate
    check_against_rounds(read_scalars(tmp_path / "tb2" / tiny_run.name), pd.read_csv(tiny_run / "rounds.csv"))


def test_a_sweep_logs_one_tensorboard_run_per_point(tmp_path: Path, runs, capsys) -> None:
    from sweep_fakes import BW, write_experiment

    exp = write_experiment(tmp_path, {"grid": {BW: [2e5, 1e6]}, "seeds": [0]})
    assert main(["sweep", str(exp), "--out", str(tmp_path / "s"), "-q", "--no-plots",
                 "--tensorboard", str(tmp_path / "tb")]) == 0
    logged = sorted(p.name for p in (tmp_path / "tb").iterdir())
    assert logged == sorted(runs) and len(logged) == 2
    for name in logged:
        check_against_rounds(read_scalars(tmp_path / "tb" / name),
                             pd.read_csv(tmp_path / "s" / "runs" / name / "rounds.csv"))


def test_without_tensorboard_installed_the_run_fails_first_with_the_pip_line(tmp_path: Path, capsys,
                                                                             monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    code = main(["run", str(TINY), "--out", str(tmp_path / "r"), "-q", "--tensorboard", str(tmp_path / "tb")])
    err = capsys.readouterr().err
    assert code == 1 and "pip install 'vfedsim[tensorboard]'" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()  # nothing written
