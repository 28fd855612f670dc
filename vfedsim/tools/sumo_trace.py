"""Make a SUMO floating-car-data trace for the ``sumo-fcd`` road with one command (``vfedsim trace``).

Runs the SUMO tools of the ``eclipse-sumo`` package (``pip install 'vfedsim[sumo]'``) in a temporary
directory: ``netgenerate`` builds the network, ``randomTrips.py`` (SUMO's tools directory) draws
``vehicles`` random trips inserted over the first two thirds of the run and routes them (``duarouter``),
and ``sumo`` simulates ``duration_s`` seconds at 1 s steps writing ``--fcd-output`` with the attributes
x, y, speed, angle, lane (https://sumo.dlr.de/docs/Simulation/Output/FCDOutput.html).

Networks: ``grid``: a Manhattan grid of 4 x 3 intersections with 433 m x 250 m blocks (3GPP TR 37.885
§6.1.2 urban), 2 lanes per direction at 50 km/h, traffic lights at the junctions; ``highway``: a straight
2 km two-way road of 3 lanes per direction at 120 km/h (TR 37.885 highway), split into 500 m edges.

The same arguments give the same bytes: SUMO's header comment (date, paths) is dropped and a ``.gz``
output is written with gzip mtime 0.
"""
from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScenarioError, VfedsimError

__all__ = ["NETS", "sumo_home", "make_trace"]

INSTALL_HINT = "pip install 'vfedsim[sumo]'"

NETS = {
    "grid": ["--grid", "--grid.x-number", "4", "--grid.y-number", "3", "--grid.x-length", "433",
             "--grid.y-length", "250", "--default.lanenumber", "2", "--default.speed", "13.89",
             "--default-junction-type", "traffic_light", "--no-turnarounds", "true"],
    "highway": ["--grid", "--grid.x-number", "5", "--grid.y-number", "1", "--grid.x-length", "500",
                "--default.lanenumber", "3", "--default.speed", "33.33"],
}
"""netgenerate arguments per ``--net`` choice (speeds [m/s], lengths [m])."""

_TRIPS = {"grid": ["--min-distance", "600"], "highway": ["--fringe-factor", "100"]}


@dataclass(frozen=True)
class SumoTools:
    home: Path
    netgenerate: Path
    sumo: Path
    random_trips: Path


def sumo_home() -> SumoTools:
    """Where SUMO is: the ``sumo`` Python package of eclipse-sumo, else ``$SUMO_HOME``. A `VfedsimError`
    naming the pip install when neither has the binaries."""
    homes = []
    try:
        import sumo  # the eclipse-sumo wheel

        homes.append(Path(sumo.SUMO_HOME))
    except ImportError:
        pass
    if os.environ.get("SUMO_HOME"):
        homes.append(Path(os.environ["SUMO_HOME"]))
    for home in homes:
        tools = SumoTools(home=home, netgenerate=home / "bin" / "netgenerate", sumo=home / "bin" / "sumo",
                          random_trips=home / "tools" / "randomTrips.py")
        if tools.netgenerate.is_file() and tools.sumo.is_file() and tools.random_trips.is_file():
            return tools
    # a missing optional extra is a runtime failure (exit status 1), as for every other extra
    raise VfedsimError(f"vfedsim trace needs SUMO (netgenerate, sumo, randomTrips.py): {INSTALL_HINT}")


def make_trace(out: str | Path, *, net: str = "grid", vehicles: int = 30, duration_s: float = 120.0,
               seed: int = 0) -> Path:
    """Write an FCD trace of ``vehicles`` random trips on ``net`` over ``duration_s`` [s] to ``out``
    (``.xml`` or ``.xml.gz``); returns its path."""
    out = Path(out)
    if net not in NETS:
        raise ScenarioError("--net", f"unknown network {net!r}", allowed=sorted(NETS), value=net)
    if not out.name.endswith((".xml", ".xml.gz")):
        raise ScenarioError("--out", f"must end in .xml or .xml.gz, got {out.name!r}")
    if vehicles < 1 or duration_s <= 0:
        raise ScenarioError("--vehicles" if vehicles < 1 else "--duration", "must be positive")
    tools = sumo_home()
    env = {**os.environ, "SUMO_HOME": str(tools.home)}
    insert_s = max(duration_s * 2.0 / 3.0, 1.0)  # [s] insertion window
    with tempfile.TemporaryDirectory(prefix="vfedsim-sumo-") as tmp:
        d = Path(tmp)
        _call([str(tools.netgenerate), *NETS[net], "--seed", str(seed), "-o", "net.net.xml"], d, env)
        _call([sys.executable, str(tools.random_trips), "-n", "net.net.xml", "-o", "trips.trips.xml",
               "-r", "routes.rou.xml", "-b", "0", "-e", f"{insert_s:g}", "-p", f"{insert_s / vehicles:g}",
               "--seed", str(seed), "--validate", *_TRIPS[net]], d, env)
        _call([str(tools.sumo), "-n", "net.net.xml", "-r", "routes.rou.xml", "--begin", "0",
               "--end", f"{duration_s:g}", "--step-length", "1", "--seed", str(seed),
               "--fcd-output", "fcd.xml", "--fcd-output.attributes", "x,y,speed,angle,lane",
               "--no-step-log", "true", "--no-warnings", "true", "--duration-log.disable", "true"], d, env)
        text = (d / "fcd.xml").read_bytes()
    text = re.sub(rb"<!--.*?-->\s*", b"", text, count=1, flags=re.S)  # header: date and paths
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".part")
    if out.name.endswith(".gz"):
        with open(tmp_out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                       compresslevel=9) as f:
            f.write(text)
    else:
        tmp_out.write_bytes(text)
    os.replace(tmp_out, out)
    return out


def _call(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ScenarioError("", f"cannot run {Path(cmd[0]).name} ({exc.strerror}): {INSTALL_HINT}") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        name = Path(cmd[1] if cmd[0] == sys.executable else cmd[0]).name
        raise VfedsimError(f"{name} failed (exit {done.returncode}): {last}")


if __name__ == "__main__":  # pragma: no cover
    print(make_trace(sys.argv[1]))
