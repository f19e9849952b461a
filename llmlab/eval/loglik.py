"""Log-likelihood scoring of continuations, the way lm-eval scores multiple choice.

    logps = continuation_logprobs(model, [(prompt_ids, tok.encode(" A")), (prompt_ids, tok.encode(" B"))])
    best = pick_choice(model, prompt_ids, [tok.encode(" A"), tok.encode(" B")])   # index of the likeliest

Each pair (context, continuation) gives sum_i log p(continuation_i | context, continuation_<i), in nats. Pairs whose
model inputs (context + continuation minus its last token) are identical share one forward pass: the four answer
letters of a question cost a single pass. Inputs longer than the model's context keep their last seq_len tokens
(the continuation is always kept whole). Rows are batched by length, right-padded (padding is never attended by
the positions read, the attention being causal).
"""

from __future__ import annotations

import torch

from llmlab.errors import LlmlabError


@torch.inference_mode()
def continuation_logprobs(model, pairs: list[tuple[list[int], list[int]]], batch_size: int = 16) -> list[float]:
    seq_len = model.cfg.seq_len
    device = model.embed.weight.device
    rows: dict[tuple[int, ...], int] = {}  # distinct model input -> row
    reads: list[list[tuple[int, int, list[int]]]] = []  # per row: (pair index, position predicting cont[0], cont)
    for index, (context, cont) in enumerate(pairs):
        if not cont or not context or len(cont) > seq_len:
            raise LlmlabError(f"pair {index}: needs a non-empty context and 1..{seq_len} continuation tokens, "
                              f"got {len(context)} and {len(cont)}")
        full = [*context, *cont][-(seq_len + 1):]  # inputs are full[:-1]: at most seq_len tokens
        row = rows.setdefault(tuple(full[:-1]), len(rows))
        if row == len(reads):
            reads.append([])
        reads[row].append((index, len(full) - len(cont) - 1, cont))
    out = [0.0] * len(pairs)
    inputs = list(rows)
    order = sorted(range(len(inputs)), key=lambda r: len(inputs[r]))
    for first in range(0, len(order), batch_size):
        batch = order[first : first + batch_size]
        width = len(inputs[batch[-1]])
        x = torch.zeros(len(batch), width, dtype=torch.long, device=device)  # (B, T), right-padded with id 0
        for i, row in enumerate(batch):
            x[i, : len(inputs[row])] = torch.tensor(inputs[row])
        logp = model(x)[0].float().log_softmax(dim=-1)  # (B, T, V)
        for i, row in enumerate(batch):
            for index, start, cont in reads[row]:
                positions = torch.arange(start, start + len(cont), device=device)
                out[index] = float(logp[i, positions, torch.tensor(cont, device=device)].sum())
    return out


def pick_choice(model, context: list[int], choices: list[list[int]]) -> tuple[int, list[float]]:
    """(index of the choice with the highest log-likelihood after `context`, every choice's log-likelihood)."""
    logps = continuation_logprobs(model, [(context, c) for c in choices])
    return max(range(len(choices)), key=logps.__getitem__), logps
