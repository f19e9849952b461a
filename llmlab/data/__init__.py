"""Data: the built-in corpus, user sources, cleaning and dedup, and tokenized shards (`llmlab data ...`)."""
