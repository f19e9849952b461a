"""The server's "think harder" control: OpenAI's `reasoning_effort` mapped to a test-time strategy and a budget.

    low     one sampled answer (what the request gets without the field)
    medium  self-consistency over 8 sampled answers
    high    self-consistency over 32 sampled answers

Self-consistency (Wang et al. 2022): the answers are sampled as rows of the model's engine (they share the prompt's
prefill), each is reduced to its final answer (the text after its last "####" as the tasks write it, else the whole
answer with spaces and case normalised), the most frequent final answer wins (ties: the first drawn), and the first
answer that gave it is returned. The response says what was done in its `llmlab.reasoning` extension field:
{"effort", "strategy", "samples", "votes": {final answer: count}}. Streamed requests get the chosen answer as one
delta once all samples are in.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from llmlab.engine.batching import Request
from llmlab.engine.strategies import majority_vote
from llmlab.tasks.base import final_answer

SAMPLES = {"low": 1, "medium": 8, "high": 32}


def vote_key(text: str) -> str:
    """What answers are compared on: the final answer after "####", else the whole text, normalised."""
    answer = final_answer(text)
    return " ".join((answer if answer is not None else text).lower().split())


def sample_requests(request: Request, effort: str) -> list[Request]:
    """The engine requests of one effort level: the request itself, then copies with seeds derived from its seed (or
    unseeded, drawing fresh randomness, as the request is)."""
    return [request] + [replace(request, seed=None if request.seed is None else request.seed + 1_000_003 * j)
                        for j in range(1, SAMPLES[effort])]


class SelfConsistent:
    """Several generations of one request, reduced to the self-consistent answer once all are done; it reads like a
    Generation to the server's response code (run, deltas, text, finish_reason, completion_tokens, logprobs, done,
    cancel, take_logprobs)."""

    def __init__(self, gens: list, effort: str) -> None:
        self.gens, self.effort = gens, effort
        self.text, self.finish_reason, self.completion_tokens = "", None, 0
        self.logprobs: list = []
        self.reasoning: dict = {"effort": effort, "strategy": "self-consistency" if len(gens) > 1 else "sampling",
                                "samples": len(gens), "votes": {}}
        self._sent = False

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    async def run(self) -> str:
        """Wait for every sample (a timeout or failure of one cancels the others), then choose."""
        try:
            await asyncio.gather(*(g.run() for g in self.gens))
        except BaseException:
            self.cancel()
            raise
        keys = [vote_key(g.text) for g in self.gens]
        winner, _ = majority_vote(keys)
        pick = self.gens[keys.index(winner)]
        self.text, self.logprobs = pick.text, pick.logprobs
        self.completion_tokens = sum(g.completion_tokens for g in self.gens)  # every sampled token was computed
        for key in keys:
            self.reasoning["votes"][key] = self.reasoning["votes"].get(key, 0) + 1
        self.finish_reason = pick.finish_reason
        return self.text

    async def deltas(self):
        await self.run()
        self._sent = True
        yield self.text

    def take_logprobs(self) -> list:
        return self.logprobs if self._sent else []

    def cancel(self) -> None:
        for g in self.gens:
            g.cancel()
