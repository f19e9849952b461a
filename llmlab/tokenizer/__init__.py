"""Byte-level BPE tokenizer: training (HF `tokenizers`), fast encoding (tiktoken), special tokens and chat template,
the chat renderer (ids and loss mask), and chat data in the shapes users have (conversations.py, reading its
records through llmlab.data.records)."""
