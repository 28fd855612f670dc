"""vfedsim: network-in-the-loop co-simulation of federated fine-tuning over vehicular networks.

The public API (imports are lazy, so ``import vfedsim`` stays light)::

    import vfedsim
    scenario = vfedsim.load_scenario("scenarios/quickstart.yaml", overrides=["strategy.rounds=5"])
    result = vfedsim.run(scenario, out_dir="runs/demo")
    result.rounds                      # pandas DataFrame of rounds.csv
    vfedsim.plot_run(result.out_dir)   # accuracy vs simulated time and vs uplink bytes
    run = vfedsim.load_run(result.out_dir)   # any finished run directory: rounds, events, vehicles, ...
    vfedsim.simulate_transfers(scenario, transfers)  # the network alone: a DataFrame of transfers in and out

Extension registries (register your own with ``@vfedsim.SELECTORS.register("name")``): SELECTORS,
AGGREGATORS, STRATEGIES, MOBILITY.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "__version__", "load_scenario", "run", "run_sweep", "load_experiment", "plot_run", "plot_sweep",
    "Scenario", "RunResult", "ScenarioError", "VfedsimError", "SELECTORS", "AGGREGATORS", "STRATEGIES",
    "MOBILITY", "load_plugins", "simulate_transfers", "load_run", "load_sweep", "SweepResult",
]

_WHERE = {
    "load_scenario": "engine", "run": "engine", "RunResult": "results",
    "load_run": "results", "load_sweep": "results", "SweepResult": "results",
    "run_sweep": "sweep", "load_experiment": "sweep",
    "plot_run": "plot", "plot_sweep": "plot",
    "Scenario": "scenario", "ScenarioError": "errors", "VfedsimError": "errors",
    "SELECTORS": "policies", "AGGREGATORS": "policies", "STRATEGIES": "strategies",
    "MOBILITY": "world.mobility", "load_plugins": "registry",
    "simulate_transfers": "nettool",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        module = importlib.import_module(f".{_WHERE[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'vfedsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
