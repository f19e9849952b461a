"""Work that chains stages, above the trainers, the engine and the evaluations:

    prepare.py   a run's dataset: clean store -> the run's tokenizer -> token shards (`llmlab data prepare`)
    speedrun.py  the main job: data -> pretrain -> SFT -> DPO -> eval -> report, resumable (`llmlab speedrun`)
    flywheel.py  flagged answers and their corrections -> SFT (and DPO) of the next version -> evals, old vs new
"""
