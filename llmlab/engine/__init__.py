"""The one inference engine: sampling with a KV cache, used by sample, chat, eval and serve.

    generate.py  sample_next (greedy / temperature / top-k / top-p), generate (streams a Step per new token, one
                 prefill then one cached decode step per token, several samples of one prompt in a batch),
                 generate_ids (the finished rows) and TextStream (token ids -> text as they come)
    batching.py  BatchEngine: continuous batching for the server (a background thread, a per-row KV cache, one
                 prefill per arriving request and one batched decode step for all running ones)
"""
