"""Evaluations of base and chat models (`llmlab eval ...`)."""
