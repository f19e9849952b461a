"""Data: the built-in corpus, user sources, cleaning and dedup, tokenized shards, and the default fine-tuning mixture
(assistant*.py, written once per run by default_data.py). `llmlab data ...`; llmlab.pipeline.prepare chains the
steps."""
