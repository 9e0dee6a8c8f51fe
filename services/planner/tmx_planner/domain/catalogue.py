"""Hardware and model catalogues, loaded from the data files beside this package (each entry says where
its numbers come from), plus models built from a Hugging Face config.json."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources

import yaml

from tmx_errors import InvalidArgument


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gb: float
    hbm_gbs: float
    bf16_tflops: float
    fp8_tflops: float  # 0: no FP8 tensor cores
    fp4_tflops: float  # 0: no FP4 tensor cores
    interconnect_gbs: float  # per GPU, one direction
    price_per_hour: float
    aliases: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class Model:
    name: str
    params_b: float  # total parameters (billions)
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    context_length: int
    active_params_b: float = 0.0  # per token; 0 = dense (all parameters)
    experts: int = 0
    experts_per_token: int = 0
    mla_kv_lora_rank: int = 0
    mla_rope_dim: int = 0
    sliding_window: int = 0
    sliding_layers: int = 0
    native_precision: str = "bf16"
    source: str = ""
    aliases: tuple[str, ...] = field(default=())

    @property
    def active_b(self) -> float:
        return self.active_params_b or self.params_b

    @property
    def moe(self) -> bool:
        return self.experts > 0

    @cached_property
    def dense_params_b(self) -> float:
        """Parameters every token uses (attention, embeddings, shared experts): from
        active = dense + (total - dense) * k / E."""
        if not self.moe:
            return self.params_b
        e, k = self.experts, self.experts_per_token
        return max(0.0, (self.active_b * e - self.params_b * k) / (e - k))


def _data(name: str) -> list[dict]:
    return yaml.safe_load(resources.files("tmx_planner.data").joinpath(name).read_text())


@cache
def gpus() -> dict[str, Gpu]:
    return {g["name"]: Gpu(**{**g, "aliases": tuple(g.get("aliases") or ())}) for g in _data("gpus.yaml")}


def _model(entry: dict) -> Model:
    entry = dict(entry)
    mla = entry.pop("mla", None) or {}
    return Model(**entry, mla_kv_lora_rank=mla.get("kv_lora_rank", 0), mla_rope_dim=mla.get("rope_dim", 0))


@cache
def models() -> dict[str, Model]:
    return {m["name"]: _model(m) for m in _data("models.yaml")}


_SUFFIX = re.compile(r"(-instruct|-chat|-it|-hf|-base)+$")


def _key(name: str) -> str:
    return _SUFFIX.sub("", name.split("/")[-1].strip().lower().replace("_", "-"))


@cache
def _model_keys() -> dict[str, Model]:
    return {_key(alias): m for m in models().values() for alias in (m.name, *m.aliases)}


@cache
def _gpu_keys() -> dict[str, Gpu]:
    return {_key(alias): g for g in gpus().values() for alias in (g.name, *g.aliases)}


def find_model(name: str) -> Model:
    """Match loosely: case, an org prefix (`meta-llama/`) and `-Instruct`/`-it`/`-hf` suffixes are ignored."""
    model = _model_keys().get(_key(name))
    if model is None:
        raise InvalidArgument("model", f"unknown model {name!r}; known: {', '.join(models())} "
                                       "(or pass a Hugging Face config.json)")
    return model


def find_gpu(name: str) -> Gpu:
    gpu = _gpu_keys().get(_key(name))
    if gpu is None:
        raise InvalidArgument("gpu", f"unknown GPU {name!r}; known: {', '.join(gpus())}")
    return gpu


MAX_CONFIG_SIZE = 1 << 30  # a bound on any size in a config.json (contexts reach 10M tokens, vocabularies 256k)


def model_from_hf_config(name: str, config: dict) -> Model:
    """A Model from a Hugging Face config.json (Llama/Qwen/Mistral/Mixtral/DeepSeek/gpt-oss/Gemma shapes).
    Parameter counts are computed from the shapes, since config.json does not state them."""
    cfg = config.get("text_config", config)
    if not isinstance(cfg, dict):
        raise InvalidArgument("config", "text_config must be an object")

    def size(key: str, default: int | None = None, minimum: int = 1) -> int:
        """A size from the config: an integer (a float with an integer's value will do) within
        minimum..MAX_CONFIG_SIZE; `default` when it is missing or null, or 0 where there is a default (config.json's
        way of saying unset)."""
        value = cfg.get(key)
        if value is None or (value == 0 and default is not None):
            if default is None:
                raise InvalidArgument("config", f"config.json lacks {key!r}")
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value != int(value):
            raise InvalidArgument("config", f"{key} must be an integer, got {value!r}")
        if not minimum <= value <= MAX_CONFIG_SIZE:
            raise InvalidArgument("config", f"{key} must be within {minimum}..{MAX_CONFIG_SIZE}, got {value!r}")
        return int(value)

    hidden, layers, heads, vocab = (size("hidden_size"), size("num_hidden_layers"), size("num_attention_heads"),
                                    size("vocab_size"))
    kv_heads = size("num_key_value_heads", heads)
    if heads % kv_heads:
        raise InvalidArgument("config", f"num_attention_heads {heads} must be a multiple of num_key_value_heads "
                                        f"{kv_heads}")
    head_dim = size("head_dim", max(hidden // heads, 1))
    inter = size("intermediate_size", 4 * hidden)
    experts = size("n_routed_experts", 0) or size("num_local_experts", 0) or size("num_experts", 0)
    per_token = size("num_experts_per_tok", 0) or size("experts_per_token", 0)
    if experts and per_token > experts:  # (a dense model's config may carry an unused experts-per-token)
        raise InvalidArgument("config", f"{per_token} experts per token of {experts}")
    moe_inter = size("moe_intermediate_size", inter)
    shared = size("n_shared_experts", 0)
    kv_lora = size("kv_lora_rank", 0)
    attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    if kv_lora:  # MLA projections, approximately
        nope, rope, v_dim = size("qk_nope_head_dim", 128), size("qk_rope_head_dim", 64), size("v_head_dim", 128)
        attn = hidden * heads * (nope + rope) + hidden * (kv_lora + rope) + kv_lora * heads * (nope + v_dim) + \
            heads * v_dim * hidden
    embed = vocab * hidden * (1 if cfg.get("tie_word_embeddings") else 2)
    if experts:
        expert = 3 * hidden * moe_inter
        total = layers * (attn + expert * (experts + shared)) + embed
        active = layers * (attn + expert * (per_token + shared)) + embed
    else:
        total = active = layers * (attn + 3 * hidden * inter) + embed
    window = size("sliding_window", 0)
    layer_types = cfg.get("layer_types") or []
    sliding_layers = sum(1 for t in layer_types if "sliding" in str(t)) if layer_types else (layers if window else 0)
    return Model(
        name=name, params_b=total / 1e9, active_params_b=active / 1e9 if experts else 0.0, layers=layers,
        hidden=hidden, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
        context_length=size("max_position_embeddings", 0), experts=experts, experts_per_token=per_token,
        mla_kv_lora_rank=kv_lora, mla_rope_dim=size("qk_rope_head_dim", 0) if kv_lora else 0,
        sliding_window=window if sliding_layers else 0, sliding_layers=sliding_layers,
        source="computed from config.json",
    )
