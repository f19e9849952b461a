"""Monitoring what the served models do: the serving database (store), the arena leaderboard of blind A/B
comparisons (arena), and a scripted user and labeler (scripted). The flywheel that turns corrections into the next
version chains training stages, so it lives in llmlab.pipeline.flywheel."""
