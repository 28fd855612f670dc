"""The CLI adapter: exit statuses, one-line errors, nothing written on bad input, lazy imports, help texts.

The engine's `run` is replaced by a fast fake except in the slow end-to-end test.
"""
from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import vfedsim.engine as engine
from vfedsim.cli import default_run_dir, main

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "scenarios" / "tiny.yaml"
SUBCOMMANDS = ("run", "validate", "sweep", "plot", "pretrain", "channel")


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fake_run(scenario, *, out_dir, progress=True, **options):
    """Writes a small run directory like the engine's (rounds.csv, summary.json, config.yaml)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in range(scenario.strategy.rounds + 1):
        row = {"round": r, "sim_time_s": 15.0 * r, "bytes_up": 5000 * (r > 0), "bytes_down": 9000 * (r > 0),
               "cum_bytes_up": 5000 * r, "cum_bytes_down": 9000 * r, "clients_selected": 4 * (r > 0),
               "clients_arrived": 3 * (r > 0), "clients_dropped": 1 * (r > 0)}
        for i, task in enumerate(scenario.learning.tasks):
            acc = 0.45 + 0.02 * i + 0.04 * r
            row.update({f"{task}.accuracy": acc, f"{task}.macro_f1": acc - 0.1, f"{task}.loss": 1.0 - acc})
        rows.append(row)
    rounds = pd.DataFrame(rows)
    rounds.to_csv(out / "rounds.csv", index=False)
    metrics = [c for c in rounds.columns if "." in c]
    summary = {"final": {c: float(rounds[c].iloc[-1]) for c in metrics},
               "pretrained": {c: float(rounds[c].iloc[0]) for c in metrics},
               "drops_by_cause": {"deadline": 2, "left_coverage": 1}}
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "config.yaml").write_text(yaml.safe_dump(scenario.to_dict(), sort_keys=False))
    return engine.RunResult(out_dir=out, rounds=rounds, summary=summary)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []

    def recording(scenario, *, out_dir, progress=True, **options):
        calls.append(Path(out_dir))
        return fake_run(scenario, out_dir=out_dir, progress=progress)

    monkeypatch.setattr(engine, "run", recording)
    return calls


def tiny_with(tmp_path: Path, edit) -> Path:
    """A copy of tiny.yaml in tmp_path, with ``edit(raw_dict)`` applied."""
    raw = yaml.safe_load(TINY.read_text())
    edit(raw)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------- errors
def _malformed(tmp_path: Path) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text("name: tiny\nstrategy: {rounds: 3\n")
    return [str(path)]


def _unknown_key(tmp_path: Path) -> list[str]:
    def edit(raw):
        raw["strategy"]["roudns"] = raw["strategy"].pop("rounds")

    return [str(tiny_with(tmp_path, edit))]


def _missing_plugins(tmp_path: Path) -> list[str]:
    return [str(TINY), "--plugins", str(tmp_path / "my_policies.py")]


def _broken_plugins(tmp_path: Path) -> list[str]:
    path = tmp_path / "plugin.py"
    path.write_text("raise ValueError('oops')\n")
    return [str(TINY), "--plugins", str(path)]


BAD_INPUTS = {  # name -> (argv builder, key path in the message, fragment)
    "malformed-yaml": (_malformed, "scenario", "malformed YAML"),
    "unknown-key": (_unknown_key, "strategy.roudns", "did you mean 'rounds'"),
    "unknown-policy": (lambda t: [str(TINY), "--set", "strategy.selection.name=coverag"],
                       "strategy.selection.name", "did you mean 'coverage'"),
    "negative-bandwidth": (lambda t: [str(TINY), "--set", "world.channel.bandwidth_hz=-1e6"],
                           "world.channel.bandwidth_hz", "greater than 0"),
    "missing-scenario": (lambda t: [str(t / "nope.yaml")], "scenario", "file not found"),
    "missing-plugins": (_missing_plugins, "--plugins", "no such file"),
    "broken-plugins": (_broken_plugins, "--plugins", "ValueError: oops"),
    "bad-set-syntax": (lambda t: [str(TINY), "--set", "strategy.rounds"], "--set", "expected dotted.key=value"),
    "bad-set-type": (lambda t: [str(TINY), "--set", "strategy.rounds=many"], "strategy.rounds", "integer"),
    "unknown-profile": (lambda t: [str(TINY), "--set", "world.channel.profile=5g-magic"],
                        "world.channel.profile", "allowed: 3gpp-highway"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_run_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, capsys, runs, case: str) -> None:
    build, key, fragment = BAD_INPUTS[case]
    out_dir = tmp_path / "out"
    code, out, err = cli(capsys, "run", *build(tmp_path), "--out", out_dir)
    assert code == 2
    assert err.startswith(f"vfedsim: error: {key}: "), err
    assert fragment in err
    assert err.count("\n") == 1 and out == ""
    assert not out_dir.exists() and runs == []


@pytest.mark.parametrize("case", ["malformed-yaml", "unknown-key", "unknown-policy", "negative-bandwidth",
                                  "missing-scenario", "bad-set-syntax"])
def test_validate_bad_input_exits_2(tmp_path: Path, capsys, case: str) -> None:
    build, key, fragment = BAD_INPUTS[case]
    code, _, err = cli(capsys, "validate", *build(tmp_path))
    assert code == 2 and err.startswith(f"vfedsim: error: {key}: ") and fragment in err


def test_run_refuses_a_non_empty_out_dir(tmp_path: Path, capsys, runs) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "precious.csv").write_text("keep me")
    code, _, err = cli(capsys, "run", TINY, "--out", out_dir)
    assert code == 2 and err.startswith("vfedsim: error: --out: ") and "not empty" in err
    assert runs == [] and [p.name for p in out_dir.iterdir()] == ["precious.csv"]
    code, _, err = cli(capsys, "run", TINY, "--out", out_dir / "precious.csv")
    assert code == 2 and "not a directory" in err


def test_unexpected_failure_exits_1_with_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    def boom(scenario, *, out_dir, progress=True):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(engine, "run", boom)
    monkeypatch.delenv("VFEDSIM_DEBUG", raising=False)
    code, _, err = cli(capsys, "run", TINY, "--out", tmp_path / "o")
    assert code == 1
    assert err == "vfedsim: error: RuntimeError: disk on fire second line (set VFEDSIM_DEBUG=1 for the traceback)\n"
    monkeypatch.setenv("VFEDSIM_DEBUG", "1")
    code, _, err = cli(capsys, "run", TINY, "--out", tmp_path / "o2")
    assert code == 1 and "Traceback (most recent call last)" in err


def test_missing_optional_extra_names_the_pip_extra(tmp_path: Path, capsys, monkeypatch) -> None:
    def needs_parquet(scenario, *, out_dir, progress=True):
        raise ModuleNotFoundError("No module named 'pyarrow'", name="pyarrow")

    monkeypatch.setattr(engine, "run", needs_parquet)
    code, _, err = cli(capsys, "run", TINY, "--out", tmp_path / "o")
    assert code == 1 and "pip install 'vfedsim[parquet]'" in err


# -------------------------------------------------------------------------------------------- success
def test_run_prints_directory_and_summary_and_draws_plots(tmp_path: Path, capsys, runs) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()  # an existing empty directory is fine
    code, out, err = cli(capsys, "run", TINY, "--out", out_dir, "--set", "output.plots=true", "--seed", "4")
    assert code == 0, err
    assert out.startswith(f"run directory: {out_dir}\n")
    assert "3 rounds, 45.0 s simulated, uplink 15.00 kB" in out
    assert "drops: deadline 2, left_coverage 1" in out
    assert "maneuver.accuracy" in out and "+0.1200" in out and "maneuver.loss" not in out
    assert sorted(p.name for p in (out_dir / "plots").iterdir()) == ["accuracy_vs_time.png",
                                                                      "accuracy_vs_uplink_bytes.png"]
    assert yaml.safe_load((out_dir / "config.yaml").read_text())["seed"] == 4


def test_run_quiet_no_plots_and_default_directory(tmp_path: Path, capsys, runs, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(capsys, "run", TINY, "--quiet", "--set", "output.plots=true", "--no-plots")
    assert code == 0
    (run_dir,) = runs
    assert out == f"{run_dir}\n"
    assert run_dir.parent == Path("runs") and run_dir.name.startswith("tiny-seed0-")
    assert not (tmp_path / run_dir / "plots").exists()


def test_default_run_dir_never_reuses_a_directory(tmp_path: Path, monkeypatch) -> None:
    import vfedsim.cli as cli_module

    monkeypatch.setattr(cli_module, "_timestamp", lambda: "20240101-120000")
    first = default_run_dir("my run/1", 3, root=tmp_path)
    assert first == tmp_path / "my_run_1-seed3-20240101-120000"
    first.mkdir()
    assert default_run_dir("my run/1", 3, root=tmp_path).name == "my_run_1-seed3-20240101-120000-2"
    (tmp_path / "my_run_1-seed3-20240101-120000-2").mkdir()
    assert default_run_dir("my run/1", 3, root=tmp_path).name.endswith("-3")


def test_validate_prints_ok(capsys) -> None:
    code, out, _ = cli(capsys, "validate", TINY, "--set", "strategy.rounds=7")
    assert code == 0
    assert out.startswith("ok: tiny (7 rounds, 4 clients/round, sync strategy, selection random")


def test_validate_several_files_reports_each(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [x\n")
    code, out, err = cli(capsys, "validate", TINY, bad)
    assert code == 2 and out.startswith("ok: tiny") and "bad.yaml" in err and "malformed YAML" in err


def test_plugins_register_a_policy_the_scenario_names(tmp_path: Path, capsys) -> None:
    from vfedsim.policies import SELECTORS

    plugin = tmp_path / "my_policy.py"
    plugin.write_text(
        "from vfedsim.policies import SELECTORS, RandomSelector\n"
        "@SELECTORS.register('plugin-test-policy')\n"
        "class PluginPolicy(RandomSelector):\n"
        "    pass\n")
    try:
        code, out, err = cli(capsys, "validate", TINY, "--plugins", plugin,
                             "--set", "strategy.selection.name=plugin-test-policy")
        assert code == 0, err
        assert "selection plugin-test-policy" in out
    finally:
        SELECTORS._entries.pop("plugin-test-policy", None)


def test_pretrain_prints_the_cache_path(tmp_path: Path, capsys, monkeypatch) -> None:
    seen = {}

    def ensure_pretrained(learning_cfg, progress=True):
        seen["tasks"] = learning_cfg.tasks
        return tmp_path / "cache" / "m3t-abc"

    monkeypatch.setitem(sys.modules, "vfedsim.learn.pretrain",
                        types.SimpleNamespace(ensure_pretrained=ensure_pretrained))
    code, out, _ = cli(capsys, "pretrain", TINY, "--set", "learning.tasks=[leader]", "--quiet")
    assert code == 0 and out == f"{tmp_path / 'cache' / 'm3t-abc'}\n" and seen["tasks"] == ("leader",)


def test_channel_table_csv_and_plot(tmp_path: Path, capsys) -> None:
    code, out, _ = cli(capsys, "channel", "log-distance", "--distances", "10,100,1000")
    assert code == 0
    lines = out.splitlines()
    assert lines[2].split()[:4] == ["distance_m", "path_loss_db", "snr_db", "rate_bps"]
    assert len(lines) == 6 and lines[-1].split()[-1] == "no"  # 1 km is out of coverage

    code, out, err = cli(capsys, "channel", "log-distance", "--set", "bandwidth_hz=1e6",
                         "--set", "path_loss.exponent=3.5", "--csv", "--plot", tmp_path / "lb.png")
    assert code == 0, err
    table = pd.read_csv(pd.io.common.StringIO(out))
    assert list(table.columns[:4]) == ["distance_m", "path_loss_db", "snr_db", "rate_bps"]
    assert np.all(np.diff(table["snr_db"]) < 0) and np.all(np.diff(table["rate_bps"]) <= 0)
    assert (tmp_path / "lb.png").stat().st_size > 5000


@pytest.mark.parametrize("argv, key", [
    (["nope-profile"], "world.channel.profile"),
    (["log-distance", "--distances", "10,abc"], "--distances"),
    (["log-distance", "--distances", "0,10"], "--distances"),
    (["log-distance", "--set", "bandwith_hz=1"], "world.channel.bandwith_hz"),
    (["log-distance", "--set", "bandwidth_hz=-3"], "world.channel.bandwidth_hz"),
])
def test_channel_bad_input(capsys, argv: list[str], key: str) -> None:
    code, _, err = cli(capsys, "channel", *argv)
    assert code == 2 and err.startswith(f"vfedsim: error: {key}")


def test_plot_command_on_a_run_directory(tmp_path: Path, capsys, runs) -> None:
    assert cli(capsys, "run", TINY, "--out", tmp_path / "r", "--quiet")[0] == 0
    assert not (tmp_path / "r" / "plots").exists()  # tiny.yaml has output.plots: false
    code, out, _ = cli(capsys, "plot", tmp_path / "r")
    assert code == 0 and out.splitlines() == [str(tmp_path / "r" / "plots" / "accuracy_vs_time.png"),
                                              str(tmp_path / "r" / "plots" / "accuracy_vs_uplink_bytes.png"),
                                              str(tmp_path / "r" / "report.html")]
    code, _, err = cli(capsys, "plot", tmp_path / "r", "--x", "strategy.rounds")
    assert code == 2 and "sweep directories only" in err
    code, _, err = cli(capsys, "plot", tmp_path / "nothing")
    assert code == 2 and err.startswith("vfedsim: error: DIR: not a directory")
    code, _, err = cli(capsys, "plot", tmp_path)
    assert code == 2 and "neither a run directory" in err


# ---------------------------------------------------------------------------------------- help, imports
def test_help_of_every_subcommand(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in SUBCOMMANDS)
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: vfedsim {name}")


def test_no_subcommand_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def _imported_after(code: str) -> set[str]:
    probe = (f"import sys\n{code}\n"
             "heavy = ('torch', 'peft', 'highway_env', 'matplotlib', 'simpy')\n"
             "print(' '.join(sorted(m for m in heavy if m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    return set(out.stdout.split())


def test_help_imports_nothing_heavy() -> None:
    code = ("import contextlib, io\nfrom vfedsim.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass")
    assert _imported_after(code) == set()


def test_validate_does_not_import_torch() -> None:
    imported = _imported_after("import contextlib, io\nfrom vfedsim.cli import main\n"
                               "with contextlib.redirect_stdout(io.StringIO()):\n"
                               f"    assert main(['validate', {str(TINY)!r}]) == 0")
    assert "torch" not in imported and "peft" not in imported and "highway_env" not in imported


def test_python_dash_m_vfedsim() -> None:
    out = subprocess.run([sys.executable, "-m", "vfedsim", "validate", str(TINY)], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 0 and out.stdout.startswith("ok: tiny")
    out = subprocess.run([sys.executable, "-m", "vfedsim", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("vfedsim ")


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_run_tiny_end_to_end(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "run"
    code, out, err = cli(capsys, "run", TINY, "--out", out_dir, "--set", "output.plots=true")
    assert code == 0, err
    assert f"run directory: {out_dir}" in out.splitlines()
    for name in ("rounds.csv", "vehicles.csv", "config.yaml", "summary.json"):
        assert (out_dir / name).is_file(), name
    assert (out_dir / "events.csv").is_file() or (out_dir / "events.parquet").is_file()
    rounds = pd.read_csv(out_dir / "rounds.csv")
    assert rounds["round"].iloc[0] == 0 and "maneuver.accuracy" in rounds.columns
    assert (out_dir / "plots" / "accuracy_vs_time.png").stat().st_size > 5000
    summary = json.loads((out_dir / "summary.json").read_text())
    assert set(summary["final"]) == set(summary["pretrained"])
