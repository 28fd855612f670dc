"""One way to say things across commands: sweep --set/--seeds, validate on experiments, channel --set paths,
--format, shell completion."""
from __future__ import annotations

from pathlib import Path

import yaml

from vfedsim.cli import _scenario_keys, build_parser, main

REPO = Path(__file__).resolve().parent.parent


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_sweep_set_and_seeds(tmp_path: Path, capsys, runs) -> None:
    from sweep_fakes import BW, write_experiment

    exp = write_experiment(tmp_path, {"grid": {BW: [2e5, 1e6]}, "seeds": [0, 1]})
    code, out, _ = cli(capsys, "sweep", exp, "--dry-run", "--set", "strategy.rounds=1", "--seeds", "3-5")
    assert code == 0 and "2 points x 3 seeds = 6 runs" in out and out.count("strategy.rounds=1") == 0
    code, _, _ = cli(capsys, "sweep", exp, "--out", tmp_path / "s", "-q", "--no-plots",
                     "--set", "strategy.rounds=1", "--seeds", "7")
    assert code == 0 and sorted(runs) == sorted(runs) and all(r.endswith("seed7") for r in runs)
    written = yaml.safe_load("".join(l for l in (tmp_path / "s" / "experiment.yaml").read_text().splitlines(True)
                                     if not l.startswith("#")))
    assert written["set"] == ["strategy.rounds=1"] and written["seeds"] == [7]
    config = yaml.safe_load((tmp_path / "s" / "runs" / runs[0] / "config.yaml").read_text())
    assert config["strategy"]["rounds"] == 1
    code, _, err = cli(capsys, "sweep", exp, "--dry-run", "--set", f"{BW}=1e5")
    assert code == 2 and "is a grid key" in err
    code, _, err = cli(capsys, "sweep", exp, "--dry-run", "--seeds", "1,x")
    assert code == 2 and "--seeds" in err


def test_validate_recognises_an_experiment(tmp_path: Path, capsys) -> None:
    code, out, _ = cli(capsys, "validate", REPO / "experiments" / "accuracy_vs_bandwidth.yaml")
    assert code == 0 and out.startswith("ok: experiment accuracy_vs_bandwidth (") and "--dry-run" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"base: {REPO / 'scenarios' / 'tiny.yaml'}\ngrid: {{strategy.selection.name: [nope]}}\n")
    code, _, err = cli(capsys, "validate", bad)
    assert code == 2 and "strategy.selection.name" in err and "sweep point" in err


def test_channel_set_takes_the_scenario_path(capsys) -> None:
    code, full, _ = cli(capsys, "channel", "log-distance", "--csv", "--distances", "100",
                        "--set", "world.channel.bandwidth_hz=1e6")
    code2, bare, _ = cli(capsys, "channel", "log-distance", "--csv", "--distances", "100", "--set", "bandwidth_hz=1e6")
    assert code == code2 == 0 and full == bare
    code, _, err = cli(capsys, "channel", "log-distance", "--set", "strategy.rounds=3")
    assert code == 2 and "world.channel.*" in err


def test_format_is_checked(capsys) -> None:
    import pytest

    from vfedsim.figstyle import check_format
    from vfedsim.errors import ScenarioError

    with pytest.raises(SystemExit) as stop:
        main(["plot", str(REPO), "--format", "jpg"])
    assert stop.value.code == 2 and "--format" in capsys.readouterr().err
    with pytest.raises(ScenarioError, match="allowed: png, pdf, svg"):
        check_format("jpg")


def test_shell_completion(capsys) -> None:
    code, out, _ = cli(capsys, "completion", "bash")
    assert code == 0 and "vfedsim" in out and "complete" in out
    keys = _scenario_keys()
    assert {"world.channel.bandwidth_hz", "strategy.rounds", "output.tensorboard"} <= set(keys)
    run = next(a for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions
               if a.dest == "overrides")
    assert "strategy.rounds=" in run.completer("strategy.r")
