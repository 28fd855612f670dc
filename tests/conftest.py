"""Shared test set-up: headless pygame, and a per-session data/pretrain cache so tests never touch ~/.cache."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "scenarios"


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory):
    """Point VFEDSIM_CACHE at one temporary folder for the whole session (or $VFEDSIM_TEST_CACHE)."""
    cache = os.environ.get("VFEDSIM_TEST_CACHE") or str(tmp_path_factory.mktemp("vfedsim-cache"))
    old = os.environ.get("VFEDSIM_CACHE")
    os.environ["VFEDSIM_CACHE"] = cache
    yield Path(cache)
    if old is None:
        os.environ.pop("VFEDSIM_CACHE", None)
    else:
        os.environ["VFEDSIM_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_path() -> Path:
    return SCENARIOS / "tiny.yaml"


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the engine's run by `sweep_fakes.fake_run` (sweep tests); the list collects the run directory
    names in call order. The real run is back after the test, even if a plugin loaded meanwhile replaced it."""
    import vfedsim.engine as engine
    from sweep_fakes import fake_run

    calls: list[str] = []

    def recording(scenario, *, out_dir, progress=True, **options):
        calls.append(Path(out_dir).name)
        return fake_run(scenario, out_dir=out_dir, progress=progress, **options)

    monkeypatch.setattr(engine, "run", recording)
    return calls


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, _session_cache) -> Path:
    """One finished run of tiny.yaml (slow network so that transfers take seconds, tracks of all vehicles),
    shared read-only by the tests of the run's files, figures, report and loading API."""
    import vfedsim

    scenario = vfedsim.load_scenario(SCENARIOS / "tiny.yaml", overrides=[
        "world.channel.bandwidth_hz=5e4", "output.tracks=all", "strategy.rounds=2"])
    out = tmp_path_factory.mktemp("tiny-run") / "run"
    vfedsim.run(scenario, out_dir=out, progress=False)
    return out
