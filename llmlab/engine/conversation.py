"""Keeping a multi-turn conversation within the model's context window (used by `llmlab chat`, later the server).

    messages, dropped = fit_history(tok, messages, max_prompt_tokens=model.cfg.seq_len - max_new_tokens)

The oldest whole exchanges (a user turn and the assistant's answer) are dropped first; the system message and the
newest user turn are always kept. If even those do not fit, the prompt is returned as is and the engine keeps its
last tokens.
"""

from __future__ import annotations

from llmlab.tokenizer.chat import render_prompt


def fit_history(tok, messages: list[dict], max_prompt_tokens: int) -> tuple[list[dict], int]:
    """(messages that fit, number of messages dropped)."""
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system) :]
    dropped = 0
    while len(turns) > 1 and len(render_prompt(tok, system + turns)) > max_prompt_tokens:
        cut = next((i for i in range(1, len(turns)) if turns[i]["role"] == "user"), len(turns) - 1)
        turns, dropped = turns[cut:], dropped + cut
    return system + turns, dropped
