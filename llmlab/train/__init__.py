"""Training: the loops that change weights, and the pieces they share.

    loop.py        TrainingRun: the optimisation loop every stage shares (schedule, accumulation, DDP, clipping,
                   metrics, periodic evaluation, checkpoints, exact resume)
    settings.py    the config groups every stage shares (Schedule, Bookkeeping) and the resume fingerprint
    pretrain.py    pre-training (PretrainConfig, the depth dial) -> <run_dir>/base
    finetune.py    what the fine-tuning stages share (FinetuneConfig, data files, LoRA, saving)
    sft.py         supervised fine-tuning -> <run_dir>/chat_sft
    prefs.py       DPO preference tuning -> <run_dir>/chat_dpo
    optim.py, schedule.py, checkpoint.py, distributed.py   Muon + AdamW, the rate schedule, checkpoints, torchrun
    plan.py        the planner behind `llmlab plan`: the trainer's own run, in FLOPs, hours and dollars
"""
