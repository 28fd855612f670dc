"""report.html: one self-contained file per run and per sweep."""
from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from vfedsim.errors import ScenarioError
from vfedsim.report import write_report


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parse(path: Path) -> list[tuple[str, dict]]:
    parser = Collect()
    parser.feed(path.read_text())
    return parser.tags


def assert_self_contained(tags: list[tuple[str, dict]]) -> None:
    assert not [t for t, _ in tags if t in ("script", "link", "iframe")]
    for tag, attrs in tags:
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not re.match(r"^(https?:)?//", value), (tag, value)  # nothing from the network
            if tag == "img" and key == "src":
                assert value.startswith("data:image/png;base64,")


def test_run_report(tiny_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    tags = parse(path)
    assert_self_contained(tags)
    images = [a["alt"] for t, a in tags if t == "img"]
    assert images == ["accuracy_vs_time", "accuracy_vs_uplink_bytes", "timeline", "road_map", "drops_by_cause",
                      "air_traffic"]
    text = path.read_text()
    for heading in ("Summary", "Metrics", "Figures", "Rounds", "Events", "Vehicles", "Scenario"):
        assert f"<h2>{heading}</h2>" in text
    assert "mean.accuracy" in text and "bytes_up.trunk" not in text.split("<h2>Figures</h2>")[0]
    assert not (run_dir / "plots").exists()  # drawn in memory: the report writes only itself
    assert 20_000 < path.stat().st_size < 3_000_000


def test_sweep_report_links_the_runs(tmp_path: Path, runs) -> None:
    from sweep_fakes import BW, write_experiment

    from vfedsim.sweep import load_experiment, run_sweep

    exp = load_experiment(write_experiment(tmp_path, {"grid": {BW: [2e5, 1e6]}, "seeds": [0, 1]}))
    run_sweep(exp, out_dir=tmp_path / "s", progress=False)
    first = sorted((tmp_path / "s" / "runs").iterdir())[0]
    (first / "report.html").write_text("<html></html>")
    path = write_report(tmp_path / "s")
    tags = parse(path)
    assert_self_contained([t for t in tags if t[0] != "a"])
    assert [a["href"] for t, a in tags if t == "a"] == [f"runs/{first.name}/report.html"]
    assert sum(1 for t, _ in tags if t == "img") >= 1
    text = path.read_text()
    assert "<h2>Runs</h2>" in text and "final acc" in text


def test_report_refuses_what_is_not_a_result(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="neither a finished run directory"):
        write_report(tmp_path)
