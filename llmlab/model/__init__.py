"""The decoder-only transformer: its config (one `depth` dial), the module with its KV cache, and FLOP/param counts.

    config.py       ModelConfig: fields, presets ("default", "gpt2", "llama"), the depth dial, validation
    transformer.py  Transformer (Llama-compatible parameter names) and KVCache for incremental decoding
    flops.py        count_params(cfg) and flops_per_token(cfg, seq_len), computed from the config alone

This layer imports nothing from llmlab except `llmlab.errors`.
"""
