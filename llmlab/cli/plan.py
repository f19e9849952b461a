"""`llmlab plan`: how many parameters, tokens, FLOPs, hours and dollars a pre-training run takes, before running it.

    llmlab plan                                              # depth 3 on this CPU (probed), 20 tokens/param
    llmlab plan --depth 12 --hardware H100 --gpus 8          # a GPT-2-small-sized model on a rented node
    llmlab plan --depth 8 --hardware A100 --budget_dollars 100   # how far $100 goes, and the optimal size for it
    llmlab plan --preset llama --depth 80 --d_model 8192 --n_heads 64 --n_kv_heads 8 --mlp_hidden 28672 \\
        --vocab_size 32000 --seq_len 4096 --tokens 2e12 --hardware A100 --gpus 6000   # Llama-2-70B: ~13 days, ~$3M
    llmlab plan --json true                                  # the same numbers as JSON

The arithmetic and its conventions are in llmlab/train/plan.py.
"""

from __future__ import annotations


def plan(
    depth: int = 3,
    preset: str = "default",
    vocab_size: int = 4096,
    seq_len: int = 256,
    d_model: int | None = None,
    n_heads: int | None = None,
    n_kv_heads: int | None = None,
    mlp_hidden: int | None = None,
    tokens: float | None = None,
    tokens_per_param: float = 20.0,
    hardware: str = "cpu",
    gpus: int = 1,
    mfu: float | None = None,
    price_per_hour: float | None = None,
    budget_flops: float | None = None,
    budget_dollars: float | None = None,
    budget_hours: float | None = None,
    json: bool = False,
) -> None:
    """Estimate parameters, training FLOPs, wall time and cost of pre-training a model, and its compute-optimal size.

    The token count comes from --tokens, or --tokens_per_param x parameters, or from one budget (--budget_flops,
    --budget_dollars or --budget_hours on the chosen hardware), which then decides how many tokens the model sees.

    Args:
        depth: the size dial: number of layers; d_model = 64 * depth unless --d_model is given.
        preset: model recipe: default, gpt2 or llama (see llmlab.model.config).
        vocab_size: embedding rows (the tokenizer's vocabulary).
        seq_len: context length in tokens (attention's FLOPs grow with it).
        d_model: residual width, overriding 64 * depth.
        n_heads: query heads, overriding d_model / head_dim.
        n_kv_heads: key/value heads (fewer than n_heads: grouped-query attention).
        mlp_hidden: MLP inner width, overriding the preset's rule.
        tokens: training tokens (e.g. 2e12); overrides --tokens_per_param.
        tokens_per_param: tokens per parameter that multiplies when --tokens is not given; also the ratio of the
            compute-optimal estimate. 20 is Chinchilla's compute-optimal ratio; nanochat measured ~10.5.
        hardware: cpu (this machine, its matmul peak probed for a second), cuda (this machine's GPU), or a GPU
            name: H100, H100 PCIe, H200, B200, A100, A10G, L4, L40S, RTX 4090, RTX 3090, V100, T4, MI300X.
        gpus: how many GPUs train together (GPU hardware only).
        mfu: assumed fraction of peak FLOP/s sustained over the run; default 0.4 on GPUs, 0.5 on CPU.
        price_per_hour: USD per device-hour; default the table's indicative rental price on GPUs, 0 on CPU.
        budget_flops: plan for this many training FLOPs.
        budget_dollars: plan for what this many dollars buy on the chosen hardware.
        budget_hours: plan for this many wall-clock hours on the chosen hardware.
        json: print the plan as JSON instead of a table.
    """
    import json as json_lib

    from llmlab.model.config import ModelConfig
    from llmlab.train.plan import format_plan, make_plan, plan_to_dict, resolve_hardware

    shape = {"d_model": d_model, "n_heads": n_heads, "n_kv_heads": n_kv_heads, "mlp_hidden": mlp_hidden}
    overrides = {name: value for name, value in shape.items() if value is not None}
    cfg = ModelConfig.preset(preset, depth, vocab_size=vocab_size, seq_len=seq_len, **overrides)
    machine = resolve_hardware(hardware, gpus, mfu, price_per_hour)
    result = make_plan(cfg, machine, tokens, tokens_per_param, budget_flops, budget_dollars, budget_hours)
    print(json_lib.dumps(plan_to_dict(result), indent=2) if json else format_plan(result))
