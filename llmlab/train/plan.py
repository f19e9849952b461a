"""The training planner behind `llmlab plan`: parameters, FLOPs, wall time and dollars of a pre-training run.

    from llmlab.train.plan import format_plan, make_plan, plan_pretraining, resolve_hardware
    print(format_plan(plan_pretraining(PretrainConfig(depth=4), 4096, resolve_hardware("cpu"))))   # `llmlab pretrain`'s run
    cfg = ModelConfig.from_depth(4, vocab_size=4096, seq_len=512)
    print(format_plan(make_plan(cfg, resolve_hardware("H100", count=8), budget_dollars=100)))    # any model, any budget

    llmlab plan --depth 6 --hardware A100 --gpus 8 ...                     # see llmlab/cli/plan.py

Conventions (each an estimate, stated so that the numbers can be checked by hand):
- Training FLOPs = flops_per_token(cfg) x tokens: 6 FLOPs per matmul parameter per token plus attention's share
  (llmlab.model.flops), the "C = 6ND" of the scaling-law papers with PaLM's attention term.
- Tokens of a pre-training config (plan_pretraining, `llmlab plan`): exactly the trainer's, steps x batch x seq_len
  with steps = tokens // (batch x seq_len) and tokens = tokens_per_param x N unless given (PretrainConfig.resolved).
  N counts the parameters that multiply: non-embedding + head (+ the tied embedding, which is the head), the N of
  "6N". make_plan on a bare ModelConfig takes D = r x N, r = 20 by default, Chinchilla's compute-optimal ratio
  (Chinchilla counted all parameters, the same to a few percent at its sizes; with a 4096-token vocabulary at
  depth 3 the embedding is a quarter of the total). nanochat's sweep, counting as here, lands at ~10.5: the ratio
  depends on the architecture, the data and what is counted, so 20 is a reference point, not a law.
- Wall time = FLOPs / (peak x MFU x devices); cost = wall hours x devices x price per device-hour. Communication,
  restarts, evaluation and data loading are all folded into the MFU.
- Compute-optimal size for a budget C: C = 6 N D and D = r N give N = sqrt(C / 6r), D = r N.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig
from llmlab.model.flops import count_params, flops_per_token
from llmlab.train.pretrain import PretrainConfig

CHINCHILLA_TOKENS_PER_PARAM = 20.0
# Large, well-tuned GPU runs sustain 40-55% of the dense bf16 peak (PaLM reports 46%; Llama 2's 1,720,320
# A100-hours for 70B params on 2T tokens at seq_len 4096 imply 46% with llmlab's FLOP count). 0.4 is a cautious
# default for a big run; one small model on one GPU often gets less, its matmuls being too small to fill the GPU.
GPU_DEFAULT_MFU = 0.4
# On CPU the peak is the measured 1024x1024 matmul rate, not a datasheet figure, so MFU is relative to what BLAS
# actually reaches. Eager fp32 training steps (forward, backward, AdamW) on the 2-core dev machine measured 0.45-0.53
# of it at depth 4-8 (seq_len 256-512) and only 0.1-0.2 at depth 1-2, where elementwise work and overheads dominate.
CPU_DEFAULT_MFU = 0.5
MAX_DIAL_DEPTH = 1024  # deepest depth the compute-optimal search tries (d_model 65,536: far past any real model)
SHAPE_FIELDS = ("depth", "d_model", "n_heads", "n_kv_heads", "mlp_hidden")  # what the depth dial derives


@dataclass(frozen=True)
class Hardware:
    """What the run trains on: `count` devices of one kind and the assumptions about them."""

    name: str
    count: int
    peak_flops: float  # one device, FLOP/s
    peak_source: str  # where peak_flops comes from (datasheet or measured)
    mfu: float  # assumed fraction of the peak sustained over the whole run
    usd_per_hour: float  # one device

    @property
    def sustained_flops(self) -> float:
        return self.peak_flops * self.mfu * self.count


@dataclass(frozen=True)
class Plan:
    """Everything `llmlab plan` prints; plan_to_dict(plan) is its JSON."""

    model: dict
    params_total: int
    params_non_embedding: int
    params_scaling: int  # the N of tokens_per_param and of the compute-optimal estimate (scaling_params)
    flops_per_token: float
    tokens: float
    tokens_per_param: float  # tokens / params_scaling for this plan
    total_flops: float
    hardware: Hardware
    seconds: float
    device_hours: float
    cost_usd: float
    budget: str | None  # how the budget was given, e.g. "$1000 on 8 x H100 SXM"; None when tokens set the size
    reference_tokens_per_param: float  # the r of the compute-optimal estimate
    optimal_params: float
    optimal_tokens: float
    optimal_depth: int  # the depth of the dial (same recipe, vocab and seq_len) closest to optimal_params
    optimal_depth_params: int  # its scaling_params


def scaling_params(cfg: ModelConfig) -> int:
    """Parameters that multiply: non-embedding + head, + the embedding when tied (it is the head)."""
    params = count_params(cfg)
    return params["non_embedding"] + params["head"] + (params["embedding"] if cfg.tie_embeddings else 0)


def _check_positive(name: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, (int, float)) and 0 < value < math.inf):
        raise LlmlabError(f"{name} must be a positive number, got {value!r}")


def resolve_hardware(
    name: str = "cpu", count: int = 1, mfu: float | None = None, usd_per_hour: float | None = None
) -> Hardware:
    """`cpu` (this machine, probed), `cuda` (this machine's GPU) or a GPU from llmlab.hardware.ACCELERATORS by name.

    mfu defaults to CPU_DEFAULT_MFU / GPU_DEFAULT_MFU; usd_per_hour to 0 on CPU and to the table's price on GPUs.
    """
    from llmlab.hardware import ACCELERATORS, describe_machine, find_accelerator, peak_flops

    if mfu is not None and not (isinstance(mfu, (int, float)) and 0 < mfu <= 1):
        raise LlmlabError(f"mfu must be in (0, 1] (the fraction of peak FLOP/s sustained, e.g. 0.4), got {mfu!r}")
    if usd_per_hour is not None and not (isinstance(usd_per_hour, (int, float)) and 0 <= usd_per_hour < math.inf):
        raise LlmlabError(f"price per hour must be a number >= 0, got {usd_per_hour!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise LlmlabError(f"number of GPUs must be a positive integer, got {count!r}")
    key = name.strip().lower()
    if key == "cpu":
        if count != 1:
            raise LlmlabError(f"--gpus {count} with --hardware cpu: a CPU plan is for this one machine")
        machine = describe_machine()
        peak, source = peak_flops("cpu")
        label = f"cpu ({machine['cpu']}, {machine['logical_cores']} cores)"
        return Hardware(label, 1, peak, source, mfu or CPU_DEFAULT_MFU, usd_per_hour or 0.0)
    if key == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise LlmlabError("--hardware cuda: this machine has no CUDA GPU; name one instead, e.g. --hardware H100")
        peak, source = peak_flops("cuda")
        gpu_name = torch.cuda.get_device_name()
        known = find_accelerator(gpu_name)
        price = usd_per_hour if usd_per_hour is not None else (known.usd_per_hour if known else 0.0)
        return Hardware(gpu_name, count, peak, source, mfu or GPU_DEFAULT_MFU, price)
    accelerator = find_accelerator(name)
    if accelerator is None:
        known_names = ", ".join(a.name for a in ACCELERATORS)
        raise LlmlabError(f"unknown hardware {name!r}: use cpu, cuda (this machine's GPU) or one of {known_names}")
    price = accelerator.usd_per_hour if usd_per_hour is None else usd_per_hour
    source = "datasheet, dense bf16"
    return Hardware(accelerator.name, count, accelerator.bf16_flops, source, mfu or GPU_DEFAULT_MFU, price)


def compute_optimal(budget_flops: float, tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM) -> tuple[float, float]:
    """(N params, D tokens) with 6 N D = budget_flops and D = tokens_per_param x N."""
    _check_positive("budget (FLOPs)", budget_flops)
    _check_positive("tokens per parameter", tokens_per_param)
    params = math.sqrt(budget_flops / (6 * tokens_per_param))
    return params, tokens_per_param * params


def closest_depth(n_params: float, like: ModelConfig) -> tuple[int, int]:
    """(depth, its scaling_params): the depth of the dial, with `like`'s recipe, vocab and seq_len, closest to n_params
    in ratio. Shape overrides of `like` (d_model, heads, MLP width) are not carried over: the dial derives them."""
    recipe = {k: v for k, v in like.to_dict().items() if k not in SHAPE_FIELDS + ("vocab_size", "seq_len")}
    best_depth, best_params = 1, 0
    for depth in range(1, MAX_DIAL_DEPTH + 1):
        params = scaling_params(ModelConfig.from_depth(depth, like.vocab_size, like.seq_len, **recipe))
        if depth == 1 or abs(math.log(params / n_params)) < abs(math.log(best_params / n_params)):
            best_depth, best_params = depth, params
        if params >= n_params:
            break
    return best_depth, best_params


def budget_to_flops(
    hardware: Hardware, budget_flops: float | None, budget_dollars: float | None, budget_hours: float | None
) -> tuple[float, str] | None:
    """(training FLOPs, description) for the one budget given, or None when none is."""
    budgets = {"flops": budget_flops, "dollars": budget_dollars, "hours": budget_hours}
    given = {kind: value for kind, value in budgets.items() if value is not None}
    if not given:
        return None
    if len(given) > 1:
        raise LlmlabError(f"give one budget, not {len(given)}: {', '.join('budget_' + k for k in given)}")
    kind, value = next(iter(given.items()))
    _check_positive(f"budget_{kind}", value)
    on = f"on {hardware.name}" if hardware.count == 1 else f"on {hardware.count:,} x {hardware.name}"
    if kind == "flops":
        return value, format_flops(value)
    if kind == "hours":
        return value * 3600 * hardware.sustained_flops, f"{format_duration(value * 3600)} {on}"
    fleet_usd_per_hour = hardware.usd_per_hour * hardware.count
    if fleet_usd_per_hour == 0:
        raise LlmlabError(f"a dollar budget needs a price: {hardware.name} costs $0/h here; pass --price_per_hour")
    return value / fleet_usd_per_hour * 3600 * hardware.sustained_flops, f"{format_dollars(value)} {on}"


def make_plan(
    cfg: ModelConfig,
    hardware: Hardware,
    tokens: float | None = None,
    tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM,
    budget_flops: float | None = None,
    budget_dollars: float | None = None,
    budget_hours: float | None = None,
    seq_len: int | None = None,
) -> Plan:
    """Plan training `cfg` on `hardware` for `tokens`, or tokens_per_param x params, or as far as one budget goes,
    on sequences of seq_len tokens (None: the model's context).

    tokens_per_param also sets the ratio of the compute-optimal estimate shown next to the plan."""
    _check_positive("tokens", tokens)
    _check_positive("tokens per parameter", tokens_per_param)
    params = count_params(cfg)
    n_scaling = scaling_params(cfg)
    per_token = flops_per_token(cfg, seq_len or cfg.seq_len)
    budget = budget_to_flops(hardware, budget_flops, budget_dollars, budget_hours)
    if budget is not None and tokens is not None:
        raise LlmlabError("give either a token count or a budget, not both: the budget decides the tokens")
    if budget is not None:
        total_flops, budget_text = budget
        tokens = total_flops / per_token
    else:
        budget_text = None
        tokens = tokens if tokens is not None else tokens_per_param * n_scaling
        total_flops = per_token * tokens
    seconds = total_flops / hardware.sustained_flops
    device_hours = seconds / 3600 * hardware.count
    optimal_params, optimal_tokens = compute_optimal(total_flops, tokens_per_param)
    optimal_depth, optimal_depth_params = closest_depth(optimal_params, cfg)
    shape = ("depth", "d_model", "n_heads", "n_kv_heads", "mlp", "mlp_hidden", "vocab_size", "seq_len")
    return Plan(
        model={k: getattr(cfg, k) for k in shape},
        params_total=params["total"],
        params_non_embedding=params["non_embedding"],
        params_scaling=n_scaling,
        flops_per_token=per_token,
        tokens=tokens,
        tokens_per_param=tokens / n_scaling,
        total_flops=total_flops,
        hardware=hardware,
        seconds=seconds,
        device_hours=device_hours,
        cost_usd=device_hours * hardware.usd_per_hour,
        budget=budget_text,
        reference_tokens_per_param=tokens_per_param,
        optimal_params=optimal_params,
        optimal_tokens=optimal_tokens,
        optimal_depth=optimal_depth,
        optimal_depth_params=optimal_depth_params,
    )


def plan_pretraining(train: PretrainConfig, vocab_size: int, hardware: Hardware, budget_flops: float | None = None,
                     budget_dollars: float | None = None, budget_hours: float | None = None,
                     reference_tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM) -> Plan:
    """The run `llmlab pretrain` makes of these settings: its model, its whole steps' tokens and its FLOP count
    (PretrainConfig.resolved, the trainer's own arithmetic); with a budget, the same model trained as far as the
    budget goes. reference_tokens_per_param is the ratio of the compute-optimal estimate shown beside it."""
    model_cfg = train.model_config(vocab_size)
    budgeted = any(b is not None for b in (budget_flops, budget_dollars, budget_hours))
    if budgeted and train.tokens is not None:
        raise LlmlabError("give either a token count (--train.tokens) or a budget, not both: the budget decides the "
                          "tokens")
    tokens = None if budgeted else train.resolved(model_cfg).tokens
    return make_plan(model_cfg, hardware, tokens, reference_tokens_per_param, budget_flops, budget_dollars,
                     budget_hours, seq_len=train.seq_len)


def plan_to_dict(plan: Plan) -> dict:
    """JSON-safe dict of the plan, with the hardware's sustained FLOP/s added."""
    return {**asdict(plan), "sustained_flops": plan.hardware.sustained_flops}


def format_count(x: float) -> str:
    """5245696 -> '5.25M', 2e12 -> '2T' (3 significant figures)."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def format_ratio(x: float) -> str:
    """20.7 -> '20.7', 6234.5 -> '6,234' (no exponent)."""
    return f"{x:.3g}" if x < 1000 else f"{x:,.0f}"


def format_flops(x: float) -> str:
    """8.3e23 -> '8.3e23 FLOPs'."""
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exponent)} FLOPs"


def format_rate(flops_per_second: float) -> str:
    """3.7e11 -> '370 GFLOP/s', 9.89e14 -> '989 TFLOP/s'."""
    for scale, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T")):
        if flops_per_second >= scale:
            return f"{flops_per_second / scale:.3g} {prefix}FLOP/s"
    return f"{flops_per_second / 1e9:.3g} GFLOP/s"


def format_duration(seconds: float) -> str:
    """Seconds, minutes, hours, days or years, whichever reads best."""
    units = ((60, 1, "s"), (3600, 60, "min"), (48 * 3600, 3600, "hour"), (730 * 86400, 86400, "day"))
    _, size, unit = next((u for u in units if seconds < u[0]), (math.inf, 365.25 * 86400, "year"))
    value = f"{seconds / size:.3g}"
    return f"{value} {unit}" if unit in ("s", "min") or value == "1" else f"{value} {unit}s"


def format_dollars(x: float) -> str:
    """0 -> '$0', 4.2 -> '$4.2', 2.1e6 -> '$2.1M'."""
    if x == 0:
        return "$0"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"${x / scale:.3g}{suffix}"
    return f"${x:.3g}"


def format_plan(plan: Plan) -> str:
    """The plan as aligned `label  value` lines."""
    m, hw = plan.model, plan.hardware
    heads = f"{m['n_heads']} heads" + (f" ({m['n_kv_heads']} kv)" if m["n_kv_heads"] != m["n_heads"] else "")
    model = (f"depth {m['depth']}, d_model {m['d_model']}, {heads}, {m['mlp']} MLP {m['mlp_hidden']}, "
             f"vocab {m['vocab_size']:,}, seq_len {m['seq_len']:,}")
    params = (f"{format_count(plan.params_total)} total, {format_count(plan.params_non_embedding)} non-embedding, "
              f"{format_count(plan.params_scaling)} that multiply (non-embedding + head: the N of 6N)")
    ratio = format_ratio(plan.tokens_per_param)
    tokens = f"{format_count(plan.tokens)} ({ratio} tokens/param; Chinchilla ~20, nanochat ~10.5)"
    compute = (f"{format_flops(plan.flops_per_token)} per token (6N + attention), "
               f"{format_flops(plan.total_flops)} in total")
    fleet = hw.name if hw.count == 1 else f"{hw.count:,} x {hw.name}"
    sustained = f"{hw.mfu:g} -> {format_rate(hw.sustained_flops)} sustained"
    sustained += "" if hw.count == 1 else f" by all {hw.count:,}"
    cost = (f"{format_dollars(plan.cost_usd)} ({format_count(plan.device_hours)} device-hours at "
            f"{format_dollars(hw.usd_per_hour)}/h each)")
    optimal = (f"for {format_flops(plan.total_flops)} at {plan.reference_tokens_per_param:g} tokens/param: "
               f"~{format_count(plan.optimal_params)} params on {format_count(plan.optimal_tokens)} tokens "
               f"~ depth {plan.optimal_depth} of the dial ({format_count(plan.optimal_depth_params)} params)")
    rows = [("budget", plan.budget)] if plan.budget is not None else []
    rows += [
        ("model", model),
        ("parameters", params),
        ("tokens", tokens),
        ("compute", compute),
        ("hardware", fleet),
        ("peak", f"{format_rate(hw.peak_flops)} per device ({hw.peak_source})"),
        ("assumed MFU", sustained),
        ("wall time", format_duration(plan.seconds)),
        ("cost", cost),
        ("compute-optimal", optimal),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
