"""Byte-level BPE tokenizer: training (HF `tokenizers`), fast encoding (tiktoken), special tokens and chat template."""
