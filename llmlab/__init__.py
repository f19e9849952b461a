"""llmlab: the whole life of a large language model, at laptop scale.

Layers, lowest first (a module only imports from its own layer or lower ones):
    files, errors       atomic writes, saved configs, user-facing errors
    data                built-in corpus, sources, cleaning, dedup, token shards
    tokenizer           byte-level BPE (train, save, fast encode)
    model / train / engine / eval / serve / security / tools   (later stages)
Run `llmlab --help` for the command line.
"""

__version__ = "0.1.0"
