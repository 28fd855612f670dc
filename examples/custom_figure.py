# %% [markdown]
# # A run, read back, and a figure of your own
#
# A script with cells (`# %%`): run it with `python examples/custom_figure.py [OUT_DIR]`, step through it
# in VS Code / PyCharm / Spyder, or open it as a notebook with jupytext. It runs the tiny scenario for
# two rounds (seconds after the first data build), loads the run directory back with `vfedsim.load_run`,
# and draws a figure that vfedsim does not: each upload's duration against the vehicle's speed, coloured by
# whether it arrived. CI executes this file (tests/test_examples.py).

# %%
import sys
from pathlib import Path

import vfedsim

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = HERE.parent  # the folder with scenarios/ (the repository, or one made by `vfedsim init`)
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 and "__file__" in globals() else ROOT / "runs" / "custom-figure"

# %% [markdown]
# ## Run a tiny scenario
# `overwrite=True` lets the cell run again into the same folder (by default `run` refuses a non-empty one).

# %%
scenario = vfedsim.load_scenario(ROOT / "scenarios" / "tiny.yaml",
                                 overrides=["strategy.rounds=2", "world.channel.bandwidth_hz=2e5"])
vfedsim.run(scenario, out_dir=OUT, progress=False, overwrite=True)

# %% [markdown]
# ## Load it back: every table of the run directory
# The same works on any finished run directory, from the command line's `vfedsim run` too.

# %%
run = vfedsim.load_run(OUT)
print(run.rounds[["round", "sim_time_s", "clients_arrived", "mean.accuracy"]].to_string(index=False))
print(run.events["kind"].value_counts().to_string())

# %% [markdown]
# ## A custom figure: upload time against speed
# Uploads are `upload_start` -> `upload_end` events of one vehicle; `vehicles.csv` has each vehicle's speed.

# %%
from matplotlib.figure import Figure  # noqa: E402

from vfedsim.figstyle import SINGLE_COLUMN_IN, save, styled  # noqa: E402

uploads = run.events[run.events["kind"] == "upload_end"].copy()
uploads["speed_kmh"] = uploads["vehicle"].map(run.vehicles["speed_mps"]) * 3.6
uploads["arrived"] = uploads["cause"] == ""

with styled():
    fig = Figure(figsize=(SINGLE_COLUMN_IN, 2.4), layout="constrained")
    ax = fig.add_subplot()
    for ok, colour, label in ((True, "#009E73", "arrived"), (False, "#D55E00", "failed")):
        part = uploads[uploads["arrived"] == ok]
        ax.scatter(part["speed_kmh"], part["duration_s"], s=12, color=colour, label=f"{label} ({len(part)})")
    ax.set_xlabel("vehicle speed [km/h]")
    ax.set_ylabel("upload duration [s]")
    ax.legend(loc="upper left")
path = save(fig, OUT / "custom_upload_time.png")
print(f"figure: {path}")
