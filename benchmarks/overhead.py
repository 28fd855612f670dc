"""How much does the simulator add on top of the training it schedules?

Runs the same federated local training steps twice in one process, alternating, several times:

* **bare**: a plain PyTorch FedAvg loop — for each round and each client: load the global trainable state
  (LoRA + heads) into the model, run the client's mini-batch steps with a fresh Adam, read the state back;
  average; evaluate only at the start and the end.
* **vfedsim**: `vfedsim.run` on the same scenario with ``world.network.model: ideal`` (every vehicle always
  connected), the same learner object, clients, shards, seeds and steps — SimPy processes, selection,
  payload packing, recording and writing the run directory included.

Prints both times and ``overhead ratio: X`` (vfedsim / bare, median over repeats; target <= 1.15).

    python benchmarks/overhead.py [--scenario scenarios/quickstart.yaml] [--rounds 4] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import vfedsim
from vfedsim.learn.train import Learner, local_train
from vfedsim.learn.aggregate import weighted_average

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(REPO / "scenarios" / "quickstart.yaml"))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    overrides = ["world.network.model=ideal", f"strategy.rounds={args.rounds}",
                 f"strategy.clients_per_round={args.clients}", f"strategy.eval_every={args.rounds}",
                 "strategy.selection.name=random", "output.plots=false", "strategy.deadline_s=1000"]
    scenario = vfedsim.load_scenario(args.scenario, overrides=overrides)
    learner = Learner(scenario.learning, seed=scenario.seed, progress=False)  # data + pretrained (cached)

    # One vfedsim run tells which clients trained on which shards with which seeds; the bare loop repeats
    # exactly those steps.
    with tempfile.TemporaryDirectory() as tmp:
        jobs_by_round = _record_jobs(scenario, learner, Path(tmp) / "probe")
    steps = sum(learner.train_steps(len(j.indices)) for jobs in jobs_by_round for j in jobs)

    bare_times, sim_times = [], []
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        _bare(learner, jobs_by_round)
        bare_times.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:
            learner_reset(learner)
            t0 = time.perf_counter()
            vfedsim.run(scenario, out_dir=Path(tmp) / "run", progress=False, learner=learner)
            sim_times.append(time.perf_counter() - t0)
        learner_reset(learner)

    bare, sim = statistics.median(bare_times), statistics.median(sim_times)
    print(f"scenario: {scenario.name}, {args.rounds} rounds x {args.clients} clients, {steps} local steps, "
          f"torch threads {torch.get_num_threads()}")
    print(f"bare PyTorch loop: {bare:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in bare_times)})")
    print(f"vfedsim (ideal network): {sim:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in sim_times)})")
    print(f"overhead ratio: {sim / bare:.3f}")


def learner_reset(learner: Learner) -> None:
    """Back to the pretrained global version, so that every repeat does the same work."""
    for v in list(learner._states):
        if v != 0:
            learner._states.pop(v)
    learner.version = 0


def _record_jobs(scenario, learner: Learner, out: Path) -> list[list]:
    jobs: list[list] = []
    run_jobs = learner.run_jobs

    def spy(batch):
        jobs.append(list(batch))
        return run_jobs(batch)

    learner.run_jobs = spy  # type: ignore[method-assign]
    try:
        vfedsim.run(scenario, out_dir=out, progress=False, learner=learner)
    finally:
        del learner.run_jobs
    learner_reset(learner)
    return jobs


def _bare(learner: Learner, jobs_by_round: list[list]) -> None:
    model, cfg = learner.model, learner.cfg
    params = learner.trainable_parameters()
    names = list(learner.global_state(0))
    global_state = {k: v.clone() for k, v in learner.global_state(0).items()}
    learner.evaluate(global_state)
    for jobs in jobs_by_round:
        states, weights = [], []
        for job in jobs:
            with torch.no_grad():
                for name, p in zip(names, params):
                    p.copy_(global_state[name])
            gen = torch.Generator().manual_seed(int(job.seed))
            idx = torch.as_tensor(np.asarray(job.indices, dtype=np.int64))
            local_train(model, params, learner.pool, idx, cfg.local, gen)
            states.append({n: p.detach().clone() for n, p in zip(names, params)})
            weights.append(float(len(idx)))
        global_state = weighted_average(states, weights)
    learner.evaluate(global_state)


if __name__ == "__main__":
    main()
