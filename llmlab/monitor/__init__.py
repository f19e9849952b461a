"""Monitoring what the served models do and closing the loop: the serving database (store), the arena
leaderboard (arena) and the data flywheel (flywheel: flags -> corrections -> the next version -> evals)."""
