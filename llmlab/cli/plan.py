"""`llmlab plan`: how many parameters, tokens, FLOPs, hours and dollars a pre-training run takes, before running it.

The run is the one `llmlab pretrain` (or the speedrun's preset) would make of the same options: the same config,
its own step count, tokens and FLOP count (llmlab.train.plan.plan_pretraining).

    llmlab plan                                              # the speedrun's default pre-training on this CPU (probed)
    llmlab plan --preset tiny                                # a speedrun preset's pre-training
    llmlab plan --depth 12 --hardware H100 --gpus 8          # a GPT-2-small-sized model on a rented node
    llmlab plan --depth 8 --hardware A100 --budget_dollars 100   # how far $100 goes, and the optimal size for it
    llmlab plan --train.preset llama --depth 80 --vocab_size 32000 --train.seq_len 4096 \\
        --train.model_overrides '{d_model: 8192, n_heads: 64, n_kv_heads: 8, mlp_hidden: 28672}' \\
        --train.tokens 2000000000000 --hardware A100 --gpus 6000          # Llama-2-70B: ~13 days, ~$3M
    llmlab plan --json true                                  # the same numbers as JSON

The arithmetic and its conventions are in llmlab/train/plan.py.
"""

from __future__ import annotations

from pathlib import Path

from llmlab.pipeline.speedrun import TrainOverrides


def plan(
    preset: str = "default",
    depth: int | None = None,
    train: TrainOverrides = TrainOverrides(),
    vocab_size: int = 4096,
    run_dir: Path | None = None,
    hardware: str = "cpu",
    gpus: int = 1,
    mfu: float | None = None,
    price_per_hour: float | None = None,
    budget_flops: float | None = None,
    budget_dollars: float | None = None,
    budget_hours: float | None = None,
    reference_tokens_per_param: float = 20.0,
    json: bool = False,
) -> None:
    """Estimate parameters, training FLOPs, wall time and cost of a pre-training run, and its compute-optimal size.

    The run is `llmlab speedrun --preset P --depth D --train.*`'s pre-training (= `llmlab pretrain --train.*` with
    the preset's values): its tokens are the trainer's whole steps. A budget (--budget_flops, --budget_dollars or
    --budget_hours on the chosen hardware) instead decides how many tokens the same model sees.

    Args:
        preset: the speedrun preset whose pre-training settings to start from: tiny, default, d6, d12.
        depth: the size dial (number of layers; width 64 x depth), overriding the preset's.
        train: any pre-training setting (the fields of `llmlab pretrain --train.*`), overriding the preset's.
        vocab_size: embedding rows (the tokenizer's vocabulary); --run_dir reads it from the run's tokenizer.
        run_dir: a run directory whose tokenizer gives the vocabulary size.
        hardware: cpu (this machine, its matmul peak probed for a second), cuda (this machine's GPU), or a GPU
            name: H100, H100 PCIe, H200, B200, A100, A10G, L4, L40S, RTX 4090, RTX 3090, V100, T4, MI300X.
        gpus: how many GPUs train together (GPU hardware only).
        mfu: assumed fraction of peak FLOP/s sustained over the run; default 0.4 on GPUs, 0.5 on CPU.
        price_per_hour: USD per device-hour; default the table's indicative rental price on GPUs, 0 on CPU.
        budget_flops: plan for this many training FLOPs.
        budget_dollars: plan for what this many dollars buy on the chosen hardware.
        budget_hours: plan for this many wall-clock hours on the chosen hardware.
        reference_tokens_per_param: tokens per parameter of the compute-optimal estimate shown beside the plan
            (20 is Chinchilla's ratio; nanochat measured ~10.5).
        json: print the plan as JSON instead of a table.
    """
    import json as json_lib

    from llmlab.pipeline.speedrun import resolve_settings
    from llmlab.train.plan import format_plan, plan_pretraining, plan_to_dict, resolve_hardware

    if run_dir is not None:
        from llmlab.layout import RunDir
        from llmlab.tokenizer.bpe import Tokenizer

        vocab_size = Tokenizer.load(RunDir(run_dir).tokenizer).vocab_size
    train_cfg = resolve_settings(preset, depth, train).train
    machine = resolve_hardware(hardware, gpus, mfu, price_per_hour)
    result = plan_pretraining(train_cfg, vocab_size, machine, budget_flops, budget_dollars, budget_hours,
                              reference_tokens_per_param)
    print(json_lib.dumps(plan_to_dict(result), indent=2) if json else format_plan(result))
