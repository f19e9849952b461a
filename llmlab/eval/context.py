"""What an evaluation gets: the model, its tokenizer and stage, the run, the seed, subset sizes, and helpers to ask a
question (plain text for base models, the chat template for chat models), decode greedily and record items.

    ctx = EvalContext(model, tok, info, model_dir, run_dir, seed=0, preset="quick", sizes={"mmlu": 200, ...})
    ids, shots = ctx.question_prompt("What is 2 + 2?", shots=[("What is 1 + 1?", "2")], reserve=64)
    text, decoding = ctx.greedy(ids, max_new_tokens=64)
    ctx.record(prompt="What is 2 + 2?", output=text, score=1.0, decoding=decoding)   # one line of <name>.jsonl

Base models read "Question: ...\\nAnswer:" (exemplars as earlier blocks separated by a blank line) and stop at a
blank line, at the next "Question:" or at a document boundary (BOS, EOS); chat models get the question as a user
turn (exemplars as earlier turns) and stop at <|end_of_turn|>. Greedy decoding needs no seed; every sampled draw
passes one (see samples.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

from llmlab.engine.batching import Request, complete_all
from llmlab.engine.generate import cut_at_stop, generate_ids
from llmlab.errors import LlmlabError
from llmlab.eval.registry import model_kind
from llmlab.tokenizer.chat import render_prompt

TEXT_STOPS = ("\n\n", "Question:")  # a base model's answer ends where its next paragraph or question begins


def text_ids(tok, text: str) -> list[int]:
    """A plain-text prompt as a document opening: BOS first where the tokenizer's documents start with one (llmlab
    models; not e.g. SmolLM2), and always for an empty text (generation needs a token to start from)."""
    return [tok.bos_id] * (tok.add_bos or not text) + tok.encode(text)


def fit_shots(build: Callable[[int], list[int]], n_shots: int, max_len: int) -> tuple[list[int], int]:
    """(build(k), k) for the largest k <= n_shots whose prompt has at most max_len tokens; build(0) when none fits
    (the caller truncates that one)."""
    for k in range(n_shots, 0, -1):
        ids = build(k)
        if len(ids) <= max_len:
            return ids, k
    return build(0), 0


class Reply(NamedTuple):
    """One sampled answer: its text, and whether the model ended the turn itself (before the token budget or the
    end of the context)."""

    text: str
    stopped: bool


@dataclass
class EvalContext:
    model: object  # llmlab.model.transformer.Transformer in eval mode
    tok: object  # llmlab.tokenizer.bpe.Tokenizer
    info: dict  # model.json
    model_dir: Path
    run_dir: Path | None
    seed: int
    preset: str
    sizes: dict[str, int | None]  # subset sizes and token budgets by name; None = everything
    items: list[dict] = field(default_factory=list)

    @property
    def stage(self) -> str:
        return self.info.get("stage", "base")

    @property
    def is_chat(self) -> bool:
        return model_kind(self.stage, self.tok) == "chat"

    @property
    def seq_len(self) -> int:
        return self.model.cfg.seq_len

    def require_run_dir(self) -> Path:
        if self.run_dir is None:
            raise LlmlabError(f"{self.model_dir}: this evaluation reads the run's data; pass --run_dir (the run folder "
                              "with data/ that the model was trained on)")
        return Path(self.run_dir)

    def size(self, name: str) -> int | None:
        return self.sizes.get(name)

    def record(self, **item) -> None:
        self.items.append({**item, "seed": self.seed})

    def question_prompt(self, question: str, shots: Sequence[tuple[str, str]] = (),
                        reserve: int = 0) -> tuple[list[int], int]:
        """(prompt ids, exemplars used): as many of `shots` (question, answer) as leave `reserve` tokens of context."""
        tok = self.tok
        if self.is_chat:
            def build(k: int) -> list[int]:
                turns = [{"role": role, "content": text}
                         for pair in shots[:k] for role, text in zip(("user", "assistant"), pair)]
                return render_prompt(tok, [*turns, {"role": "user", "content": question}])
        else:
            def build(k: int) -> list[int]:
                text = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in shots[:k])
                return text_ids(tok, f"{text}Question: {question}\nAnswer:")
        return fit_shots(build, len(shots), self.seq_len - reserve)

    def chat_replies(self, prompts: list[list[int]], max_new_tokens: int, samples: int, seeds: list[int],
                     **sampling) -> list[tuple[str, dict, list[Reply]]]:
        """For each chat prompt: its greedy answer and decoding record (as `greedy` gives them), and `samples`
        sampled answers drawn from its seed, each cut at the end of the turn. Every answer of every prompt is a row
        of shared batches (llmlab.engine.batching.complete_all), so the rows decode together."""
        end = {self.tok.special_ids["end_of_turn"]}
        requests = []
        for prompt, seed in zip(prompts, seeds):
            requests.append(Request(prompt, max_new_tokens, temperature=0.0, stop_ids=end))
            requests += [Request(prompt, max_new_tokens, seed=seed * samples + s, stop_ids=end, **sampling)
                         for s in range(samples)]
        done = complete_all(self.model, requests)
        out, k = [], samples + 1
        for i in range(len(prompts)):
            greedy, drawn = done[i * k], done[i * k + 1 : (i + 1) * k]
            decoding = self._decoding(max_new_tokens, len(greedy.tokens), greedy.finish == "stop")
            out.append((self.tok.decode(greedy.tokens).strip(), decoding,
                        [Reply(self.tok.decode(c.tokens).strip(), c.finish == "stop") for c in drawn]))
        return out

    def _room(self, prompt_ids: list[int], max_new_tokens: int) -> int:
        """How many tokens generate() may add after this prompt (it keeps the prompt's last tokens when too long)."""
        return min(max_new_tokens, self.seq_len - min(len(prompt_ids), self.seq_len) + 1)

    def _decoding(self, max_new_tokens: int, new_tokens: int, stopped: bool) -> dict:
        """The decoding record of a greedy answer (each item's JSONL line carries it)."""
        stops = ["<|end_of_turn|>"] if self.is_chat else ["<|begin_of_text|>", "<|end_of_text|>", *TEXT_STOPS]
        return {"temperature": 0.0, "max_new_tokens": max_new_tokens, "stop": stops,
                "template": "chat" if self.is_chat else "text", "new_tokens": new_tokens, "stopped": stopped}

    def greedy(self, prompt_ids: list[int], max_new_tokens: int) -> tuple[str, dict]:
        """(the answer text, its decoding settings and whether it stopped by itself, i.e. before max_new_tokens or
        the end of the context); a prompt longer than the context keeps its last tokens."""
        tok = self.tok
        if self.is_chat:
            stop_ids, stop_strings = {tok.special_ids["end_of_turn"]}, ()
        else:
            stop_ids, stop_strings = {tok.bos_id, tok.special_ids["eos"]}, TEXT_STOPS  # BOS opens the next document
        out = generate_ids(self.model, prompt_ids, max_new_tokens, temperature=0.0, stop_ids=stop_ids,
                           stop_strings=stop_strings, tokenizer=tok)[0]
        text = tok.decode(out)
        stopped = len(out) < self._room(prompt_ids, max_new_tokens) or cut_at_stop(text, stop_strings) != text
        return cut_at_stop(text, stop_strings).strip(), self._decoding(max_new_tokens, len(out), stopped)
