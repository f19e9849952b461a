"""The decoder-only transformer and everything about one model: its config (one `depth` dial), the module with its
KV cache, its counts, its folder on disk, and the formats it travels in.

    config.py                ModelConfig: fields, presets ("default", "gpt2", "llama"), the depth dial, validation
    transformer.py           Transformer (Llama-compatible parameter names) and KVCache for incremental decoding
    elementwise.py           RMSNorm, RoPE and relu^2 with hand-written CPU backward passes
    linear_cross_entropy.py  the head and the loss fused over row chunks (no (B, T, V) logits in training)
    flops.py                 count_params(cfg) and flops_per_token(cfg, seq_len), computed from the config alone
    bpb.py                   bits per byte of a token stream, and each token's byte length
    lora.py                  LoRA adapters: add, merge
    folder.py                the llmlab model folder (model.json, model.safetensors, tokenizer/)
    loading.py               any model spec (folder, Hugging Face, GGUF, hf:org/name, smollm2) -> model + tokenizer
    hf_format.py, gguf_format.py   Hugging Face and GGUF import and export

This layer imports only the foundation (errors, files) and the tokenizer (a model folder holds its tokenizer).
"""
