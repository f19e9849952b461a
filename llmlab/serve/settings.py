"""The limits and switches of `llmlab serve` (one dataclass; the CLI exposes every field as `--settings.NAME`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServeSettings:
    """Limits that keep one server healthy under bad or heavy traffic.

    Args:
        max_batch: generations decoded together per model (rows of its KV cache); more requests wait in a queue.
        max_waiting: requests allowed to wait per model when all max_batch rows are busy; past it new ones get 429
            (retry later). 0: no queue, a request is taken only when a row is free.
        max_context: longest prompt + answer per request, in tokens (None: the model's context). Each model's KV
            cache holds max_batch rows of this length: 2 x layers x max_batch x kv_heads x head_dim x max_context
            floats, e.g. 3 GB for SmolLM2-135M's 8,192-token context at 16 rows, 0.4 GB at 1,024.
        prefill_chunk: prompt tokens prefilled per engine step: a longer prompt is fed over several steps, between
            which the running generations go on, so one long prompt does not stall every stream.
        max_messages: most messages in one chat request (400 beyond).
        max_prompt_tokens: longest prompt, in tokens, after dropping old exchanges (None: the model's context minus
            one, so at least one token can be generated). Chat requests drop their oldest exchanges first to leave
            room for max_tokens (the system message and the last user turn are always kept); a prompt still over
            this limit, or an over-long completions prompt, is refused with 400 (never cut silently).
        max_tokens: most new tokens per request: a larger max_tokens in a request is clamped down to this.
        default_max_tokens: new tokens for a chat request that gives no max_tokens (completions default to 16, as
            OpenAI's API does).
        max_body_bytes: largest request body; bigger ones get 413.
        request_timeout_s: longest a request may take, queueing included: past it the generation is stopped and the
            client gets 504 (or, streaming, an error event and the end of the stream).
        rate_limit_per_min: requests per minute allowed per API key (per client address when keys are off);
            0: no limit. A token bucket: bursts up to rate_burst, then this steady rate; over it: 429.
        rate_burst: requests one key may send at once before the per-minute rate applies.
        max_stop: most stop sequences in one request (OpenAI allows 4).
        quantize: int8 to serve every model with int8 weight-only matrices (llmlab.model.quantize); None: float32.
    """

    max_batch: int = 16
    max_waiting: int = 256
    max_context: int | None = None
    prefill_chunk: int = 512
    max_messages: int = 64
    max_prompt_tokens: int | None = None
    max_tokens: int = 512
    default_max_tokens: int = 256
    max_body_bytes: int = 1 << 20  # 1 MiB: far above any prompt that fits a small model's context
    request_timeout_s: float = 300.0
    rate_limit_per_min: float = 600.0
    rate_burst: int = 60
    max_stop: int = 4
    quantize: str | None = None
