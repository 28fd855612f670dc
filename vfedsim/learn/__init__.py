"""Learning: highway-env data, the M3T model with PEFT adapters, central pretraining, local jobs, aggregation math.

torch and peft are imported only when a name that needs them is used (``vfedsim validate`` never does):

- `vfedsim.learn.scenes`    highway-env scenes -> samples: MODALITIES, TASKS (numpy + highway-env)
- `vfedsim.learn.data`      Dataset, DataBundle, load_data (cached), shard_indices (numpy + highway-env)
- `vfedsim.learn.jobs`      TrainJob (plain data)
- `vfedsim.learn.metrics`   accuracy, macro_f1, balanced_accuracy; mae, ade, fde for regression (numpy)
- `vfedsim.learn.model`     M3TModel, build_model, wrap_lora / wrap_peft, trainable_state, load_trainable_state
- `vfedsim.learn.presets`   PRESETS: the trunks m3t-tiny and minilm-l6 (packaged MiniLM-L6 weights, offline)
- `vfedsim.learn.efficientnet` the frozen EfficientNet-Lite0 camera encoder (packaged ImageNet weights, offline)
- `vfedsim.learn.waymo`     the Waymo Open Dataset v2 Parquet loader (pyarrow)
- `vfedsim.learn.adapters`  wrap_peft: LoRA, IA3, LoHa, LoKr through peft, shared and per-modality; module groups
- `vfedsim.learn.mtl`       task losses, weighting (sum, fixed, uncertainty), PCGrad and CAGrad
- `vfedsim.learn.payload`   float32 / float16 / int8 payload encodings, sizes by module
- `vfedsim.learn.pretrain`  ensure_pretrained, load_pretrained
- `vfedsim.learn.train`     TrainJob, Update, Learner
- `vfedsim.learn.aggregate` weighted_average, module_aware, state_delta, apply_delta
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Dataset": "data", "DataBundle": "data", "load_data": "data", "shard_indices": "data",
    "cache_dir": "data", "TASK_CLASSES": "data",
    "accuracy": "metrics", "macro_f1": "metrics", "balanced_accuracy": "metrics", "mae": "metrics",
    "ade": "metrics", "fde": "metrics",
    "M3TModel": "model", "build_model": "model", "trainable_state": "model", "load_trainable_state": "model",
    "wrap_peft": "adapters", "PRESETS": "presets", "MultiTaskObjective": "mtl",
    "ensure_pretrained": "pretrain", "load_pretrained": "pretrain",
    "TrainJob": "jobs", "Update": "train", "Learner": "train",
    "weighted_average": "aggregate", "state_delta": "aggregate", "apply_delta": "aggregate",
    "module_aware": "aggregate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vfedsim.learn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
