"""Conversations in the engine: keeping a multi-turn chat within the model's context window (`llmlab chat`, the
server), and the greedy replies of a chat model to a list of conversations (the flywheel, the scripted labeler).

    messages, dropped = fit_history(tok, messages, max_prompt_tokens=model.cfg.seq_len - max_new_tokens)
    replies = greedy_replies(model, tok, [[{"role": "user", "content": "Hi"}]], max_tokens=64)

The oldest whole exchanges (a user turn and the assistant's answer) are dropped first; the system message and the
newest user turn are always kept. If even those do not fit, the prompt is returned as is and the engine keeps its
last tokens.
"""

from __future__ import annotations

from llmlab.engine.batching import Request, complete_all
from llmlab.tokenizer.chat import render_prompt

# The chat's sampling defaults (`llmlab chat`, the assistant evaluations that measure what a user meets).
CHAT_TEMPERATURE = 0.7
CHAT_TOP_K = 50


def fit_history(tok, messages: list[dict], max_prompt_tokens: int) -> tuple[list[dict], int]:
    """(messages that fit, number of messages dropped)."""
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system) :]
    dropped = 0
    while len(turns) > 1 and len(render_prompt(tok, system + turns)) > max_prompt_tokens:
        cut = next((i for i in range(1, len(turns)) if turns[i]["role"] == "user"), len(turns) - 1)
        turns, dropped = turns[cut:], dropped + cut
    return system + turns, dropped


def greedy_replies(model, tok, conversations: list[list[dict]], max_tokens: int) -> list[str]:
    """The greedy assistant reply to each conversation, cut at the end of its turn or after max_tokens tokens; all
    conversations decode together as rows of the batching engine."""
    stop = {tok.special_ids["end_of_turn"]}
    requests = [Request(render_prompt(tok, c), max_tokens, temperature=0.0, stop_ids=stop) for c in conversations]
    return [tok.decode(c.tokens) for c in complete_all(model, requests)]
