"""The network alone: `vfedsim.simulate_transfers`, ``vfedsim net`` and the static road."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import vfedsim
from vfedsim.cli import main
from vfedsim.errors import ScenarioError
from vfedsim.scenario import parse_scenario
from vfedsim.world.channel import median_snr_db, rate_from_snr_bps

CHANNEL = {"profile": "log-distance", "shadowing_std_db": 0.0}


def scenario(positions, velocities=None, duration_s=600.0, channel=None, **world):
    road = {"name": "static", "positions_m": positions}
    if velocities is not None:
        road["velocities_mps"] = velocities
    return parse_scenario({"duration_s": duration_s, "world": {
        "road": road, "rsus": {"positions_m": [[0.0, 0.0]], "height_m": 5.0}, "channel": channel or CHANNEL, **world}})


def table(*rows, **extra):
    df = pd.DataFrame(rows, columns=["vehicle", "start_s", "direction", "bytes"])
    for k, v in extra.items():
        df[k] = v
    return df


def rate_at(sc, x, y=-6.0):
    p = sc.world.channel
    d = math.sqrt(x * x + y * y + 25.0)
    return float(rate_from_snr_bps(p, p.bandwidth_hz, median_snr_db(p, d, uplink=True)))


def test_one_transfer_alone_and_two_sharing_their_rsu():
    sc = scenario([[50.0, -6.0], [50.0, -8.0]])
    out = vfedsim.simulate_transfers(sc, table((0, 0.0, "up", 1_000_000), extra=["a"]))
    assert list(out.columns) == ["vehicle", "start_s", "direction", "bytes", "extra", "end_s", "ok", "cause",
                                 "bytes_done", "rsu", "handovers", "hops"]
    alone = 8e6 / rate_at(sc, 50.0)
    assert out["end_s"].iloc[0] == pytest.approx(alone, rel=1e-9)
    assert bool(out["ok"].iloc[0]) and out["cause"].iloc[0] == "" and out["rsu"].iloc[0] == 0
    both = vfedsim.simulate_transfers(sc, table((0, 0.0, "up", 1_000_000), (0, 0.0, "up", 1_000_000)))
    np.testing.assert_allclose(both["end_s"], 2 * alone, rtol=1e-9)
    later = vfedsim.simulate_transfers(sc, table((0, 0.0, "up", 1_000_000), (1, 10.0, "down", 500)))
    assert later["start_s"].iloc[1] == 10.0 and later["end_s"].iloc[1] > 10.0  # starts at its start_s


def test_drive_by_carries_bytes_until_it_leaves_coverage():
    sc = scenario([[-100.0, -6.0]], velocities=[[25.0, 0.0]])
    out = vfedsim.simulate_transfers(sc, table((0, 0.0, "up", 10 ** 12)))
    r = out.iloc[0]
    assert not r["ok"] and r["cause"] == "left_coverage"
    from vfedsim.world.radio import Radio

    radio = Radio(profile=sc.world.channel, rsu_xy=[[0.0, 0.0]], rsu_height_m=5.0, seed=0)
    exit_s = (100.0 + math.sqrt(radio.coverage_radius_m ** 2 - 36.0)) / 25.0
    assert r["end_s"] == pytest.approx(exit_s, rel=1e-9)
    assert 0 < r["bytes_done"] < 10 ** 12


def test_no_coverage_and_deterministic():
    sc = scenario([[50.0, -6.0], [5000.0, -6.0]], channel={"profile": "3gpp-highway"})
    t = table((0, 0.0, "up", 300_000), (1, 0.0, "up", 1000), (0, 1.0, "down", 200_000))
    a, b = vfedsim.simulate_transfers(sc, t), vfedsim.simulate_transfers(sc, t)
    pd.testing.assert_frame_equal(a, b)
    assert a["cause"].tolist()[1] == "no_coverage" and a["rsu"].tolist()[1] == -1


@pytest.mark.parametrize("rows, where", [
    (table((0, 0.0, "up", -5)), "row 1, column 'bytes'"),
    (table((0, 0.0, "up", 10), (3, 0.0, "up", 10)), "row 2, column 'vehicle'"),
    (table((0, -1.0, "up", 10)), "row 1, column 'start_s'"),
    (table((0, 0.0, "sideways", 10)), "row 1, column 'direction'"),
    (table((0, 0.0, "up", 1.5)), "row 1, column 'bytes'"),
    (pd.DataFrame({"vehicle": [0], "start_s": [0.0], "bytes": [1]}), "column 'direction'"),
])
def test_bad_tables_name_row_and_column(rows, where):
    with pytest.raises(ScenarioError, match=where.replace("(", r"\(")):
        vfedsim.simulate_transfers(scenario([[50.0, -6.0]]), rows)


def test_static_road_validation():
    with pytest.raises(ScenarioError, match="velocities_mps"):
        scenario([[0.0, 0.0], [1.0, 0.0]], velocities=[[1.0, 0.0]])
    with pytest.raises(ScenarioError, match="positions_m"):
        parse_scenario({"world": {"road": {"name": "static"}}})


def test_cli_net_writes_results_and_rejects_bad_input(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("duration_s: 100\nworld:\n  road: {name: static, positions_m: [[60, -6], [90, -6]]}\n"
                    "  channel: {profile: log-distance, shadowing_std_db: 0}\n")
    good = tmp_path / "t.csv"
    good.write_text("vehicle,start_s,direction,bytes\n0,0,up,100000\n1,0.5,down,2000\n")
    out = tmp_path / "r.csv"
    assert main(["net", str(spec), "--transfers", str(good), "--out", str(out)]) == 0
    got = pd.read_csv(out)
    assert got["ok"].all() and len(got) == 2 and "end_s" in got
    bad = tmp_path / "bad.csv"
    bad.write_text("vehicle,start_s,direction,bytes\n0,0,up,100000\n0,0,up,-3\n")
    out2 = tmp_path / "r2.csv"
    assert main(["net", str(spec), "--transfers", str(bad), "--out", str(out2)]) == 2
    assert "bad.csv row 2, column 'bytes'" in capsys.readouterr().err
    assert not out2.exists() and not any(p.name.startswith(".r2") for p in tmp_path.iterdir())
    assert main(["net", str(spec), "--transfers", str(tmp_path / "missing.csv")]) == 2


def test_net_does_not_import_torch(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("world:\n  road: {name: static, positions_m: [[60, -6]]}\n")
    t = tmp_path / "t.csv"
    t.write_text("vehicle,start_s,direction,bytes\n0,0,up,1000\n")
    code = ("import sys; from vfedsim.cli import main; rc = main(['net', sys.argv[1], '--transfers', sys.argv[2], "
            "'--out', sys.argv[3]]); print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(spec), str(t), str(tmp_path / "r.csv")],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[-2:] == ["0", "False"]
