"""Experiment tracking: a run's rounds.csv scalars and its configuration, logged to TensorBoard.

Through ``torch.utils.tensorboard`` (the ``tensorboard`` package: ``pip install 'vfedsim[tensorboard]'``).
Turned on by ``output.tensorboard: true`` (logs into ``<run>/tensorboard``), ``vfedsim run --tensorboard DIR``
or ``vfedsim.run(..., tensorboard=DIR)`` (logs into ``DIR/<run directory name>``), and for sweeps
``vfedsim sweep --tensorboard DIR`` (one TensorBoard run per sweep run, ``DIR/<point-id>-seed<k>``, logged
from each run's files as it finishes, whatever the executor). Look at them with ``tensorboard --logdir DIR``.

What is logged, per rounds.csv row (one per aggregation; row 0 is the pretrained model):

- every numeric column except ``round`` as a scalar, at ``global_step`` = ``round`` and with ``walltime`` =
  ``sim_time_s`` (so TensorBoard's *relative* time axis reads simulated seconds). Tags are the column names
  with ``.`` turned into ``/`` (``maneuver.accuracy`` -> ``maneuver/accuracy``, TensorBoard groups by the part
  before the first ``/``); columns without a dot go under ``run/`` (``run/cum_bytes_up``). Empty cells
  (rounds without evaluation) are skipped. `column_of_tag` maps a tag back.
- the resolved scenario (config.yaml) as text under the tag ``config``, at step 0.

MLflow or Weights & Biases: see docs/outputs.md ("Experiment tracking"): a few lines over
`vfedsim.load_run` log the same table.
"""
from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import VfedsimError

__all__ = ["TensorBoardLogger", "log_run_dir", "require_tensorboard", "tag_of_column", "column_of_tag", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'vfedsim[tensorboard]'"


def tag_of_column(column: str) -> str:
    """The TensorBoard tag of a rounds.csv column (see the module docstring)."""
    return column.replace(".", "/") if "." in column else f"run/{column}"


def column_of_tag(tag: str) -> str:
    """The rounds.csv column a tag was logged from (inverse of `tag_of_column`)."""
    return tag[len("run/"):] if tag.startswith("run/") else tag.replace("/", ".")


def require_tensorboard() -> None:
    """A `VfedsimError` naming the pip install when the ``tensorboard`` package is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise VfedsimError(f"TensorBoard logging needs the tensorboard package: {INSTALL_HINT}")


def _writer(log_dir: Path) -> Any:
    require_tensorboard()
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir), flush_secs=10)


class TensorBoardLogger:
    """Logs rounds.csv rows as they are recorded (``log_row`` is a recorder listener) into ``log_dir``."""

    def __init__(self, log_dir: str | Path, *, config_text: str | None = None) -> None:
        self.log_dir = Path(log_dir)
        self._w = _writer(self.log_dir)
        self._seen: set[str] = set()
        self._steps: list[tuple[int, float]] = []
        if config_text:
            # four-space indentation: TensorBoard renders text as Markdown, this keeps the YAML as code
            self._w.add_text("config", "\n".join("    " + line for line in config_text.splitlines()), 0,
                             walltime=0.0)

    @classmethod
    def for_run(cls, out_dir: str | Path, scenario: Any, *, root: str | Path | None = None) -> "TensorBoardLogger":
        """The logger of a run writing ``out_dir``: into ``root/<out_dir name>``, else ``out_dir/tensorboard``
        (emptied of a previous run's event files first)."""
        import yaml

        out_dir = Path(out_dir)
        log_dir = Path(root) / out_dir.name if root is not None else out_dir / "tensorboard"
        if log_dir.is_dir():
            for old in log_dir.glob("events.out.tfevents.*"):
                old.unlink()
        return cls(log_dir, config_text=yaml.safe_dump(scenario.to_dict(), sort_keys=False))

    def log_row(self, row: Mapping[str, Any]) -> None:
        """Every numeric, non-empty value of one rounds.csv row (see the module docstring).

        A module byte column (``bytes_up.<module>``) appears in the recorder's rows from the first upload
        that carries the module on, and rounds.csv holds 0 for it before: those zeros are logged when it
        first appears, so that TensorBoard holds exactly rounds.csv."""
        step = int(row["round"])
        walltime = float(row.get("sim_time_s", step))
        for column in row:
            if str(column).startswith("bytes_up.") and column not in self._seen:
                for earlier, at in self._steps:
                    self._w.add_scalar(tag_of_column(str(column)), 0.0, global_step=earlier, walltime=at)
        self._seen.update(row)
        self._steps.append((step, walltime))
        for column, value in row.items():
            if column == "round" or isinstance(value, (str, bool)) or value is None:
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isnan(number):
                continue
            self._w.add_scalar(tag_of_column(str(column)), number, global_step=step, walltime=walltime)

    def close(self) -> None:
        self._w.flush()
        self._w.close()


def log_run_dir(run_dir: str | Path, root: str | Path, *, name: str | None = None) -> Path:
    """Log a finished run directory's rounds.csv and config.yaml into ``root/<name>`` (default: the run
    directory's name), replacing what an earlier call logged there; returns that folder."""
    import pandas as pd

    run_dir = Path(run_dir)
    log_dir = Path(root) / (name or run_dir.name)
    if log_dir.is_dir():
        for old in log_dir.glob("events.out.tfevents.*"):
            old.unlink()
    config = run_dir / "config.yaml"
    logger = TensorBoardLogger(log_dir, config_text=config.read_text() if config.is_file() else None)
    try:
        for row in pd.read_csv(run_dir / "rounds.csv").to_dict("records"):
            logger.log_row(row)
    finally:
        logger.close()
    return log_dir
