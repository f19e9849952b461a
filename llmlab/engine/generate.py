"""Text generation with a KV cache: the prompt is run once (prefill), then each new token costs one cached step.

    for step in generate(model, [tok.bos_id, *tok.encode("Once")], max_new_tokens=50, temperature=0.8, seed=0):
        print(step.tokens[0])                           # the id produced for row 0 (None once the row stopped)
    rows = generate_ids(model, prompt_ids, 50, num_samples=4, seed=1, stop_ids={tok.eos_id})

Several samples of one prompt share its prefill: the cache is filled for one row and then repeated (`expand`). Each
row stops at a stop id (the stop token is yielded, then None) and all stop at max_new_tokens or when the model's
context is full. A prompt longer than the context keeps its last seq_len tokens, which leaves room for one new
token; callers that want more room truncate the prompt themselves.

Determinism: one torch.Generator, seeded with `seed`, draws every token of every row, so a seed gives the same
tokens on the same device and dtype. Model calls and sampling run under torch.inference_mode(), entered only around
them, so grad mode is never left changed while the caller holds a yielded step.

Run the checks: `.venv/bin/pytest tests/test_engine.py`.
"""

from __future__ import annotations

import codecs
from collections.abc import Collection, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from llmlab.errors import LlmlabError
from llmlab.model.transformer import KVCache, Transformer


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise LlmlabError for sampling options sample_next cannot use."""
    if temperature < 0:
        raise LlmlabError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise LlmlabError(f"top_k must be a positive number of tokens (or None for no limit), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise LlmlabError(f"top_p must be in (0, 1] (or None for no limit), got {top_p}")


@torch.inference_mode()
def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One token id per row, LongTensor (B,), drawn from logits (B, V).

    temperature 0 is greedy (argmax; top_k and top_p then change nothing). Otherwise the logits are divided by the
    temperature, cut to the top_k most likely tokens, then to the nucleus: the fewest most likely tokens whose
    probabilities sum to at least top_p (the most likely token is always kept); the draw (`draw_filtered`) takes one
    uniform number per row from `generator`.
    """
    check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    V = logits.shape[-1]
    u = torch.rand(logits.shape[0], generator=generator, device=logits.device)  # (B,)
    return draw_filtered(logits.float() / temperature, top_k if top_k is not None and top_k < V else None,
                         top_p if top_p is not None and top_p < 1 else None, u)


def draw_filtered(logits: Tensor, top_k: int | Tensor | None, top_p: float | Tensor | None, u: Tensor) -> Tensor:
    """Token ids (B,) drawn from the softmax of logits (B, V) cut to each row's top_k most likely tokens, then to its
    nucleus (the fewest most likely tokens whose probabilities sum to at least top_p; the most likely is always kept),
    with one uniform number u (B,) per row.

    top_k / top_p: one value for every row, or per-row values, LongTensor / FloatTensor (B,) (V and 1.0: no cut).
    The draw runs over the candidates most likely first (`draw`): with a top_k, over the k best of a topk instead of
    the whole vocabulary, 3-6x faster than masking the (B, V) logits (docs/LOG.md). This one function serves
    `generate` and the batching engine, so a seed gives the same tokens through either.
    """
    if top_k is None and top_p is None:
        return draw(logits.softmax(dim=-1), u)
    if top_k is not None:
        k = torch.as_tensor(top_k, device=logits.device).reshape(-1, 1).expand(logits.shape[0], 1)  # (B, 1)
        values, ids = logits.topk(int(k.max()), dim=-1)  # (B, k_max) each, most likely first
        values = values.masked_fill(torch.arange(values.shape[-1], device=logits.device) >= k, -torch.inf)
    else:
        values, ids = logits.sort(dim=-1, descending=True)  # (B, V) each
    if top_p is not None:
        p = torch.as_tensor(top_p, dtype=values.dtype, device=values.device).reshape(-1, 1)  # (B, 1) or (1, 1)
        probs = values.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # probability of the more likely candidates
        values = values.masked_fill(mass_before >= p, -torch.inf)
    return ids.gather(-1, draw(values.softmax(dim=-1), u)[:, None]).squeeze(-1)


def draw(probs: Tensor, u: Tensor) -> Tensor:
    """Indices (B,) drawn from probs (B, n) by inverse CDF: row i takes the first index whose cumulative probability
    exceeds u[i] (uniform in [0, 1), scaled by the row's total, which rounding leaves a hair off 1).

    One uniform number per token drawn, the same way here and in the batching engine, so a request to the server
    with a seed continues a prompt exactly as `llmlab sample` with that seed does (tests/test_serve.py)."""
    cdf = probs.cumsum(dim=-1)  # (B, n)
    drawn = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)  # (B, 1)
    return drawn.clamp_max(probs.shape[-1] - 1).squeeze(-1)


@dataclass(frozen=True)
class Step:
    """What one decoding step produced, row by row (one row per sample)."""

    index: int  # 0 for the first new token
    tokens: list[int | None]  # the id each row produced; None for a row that had already stopped
    finish: list[str | None]  # None: the row goes on; "stop": it produced a stop id (now or before); "length":
    # this is the last step (max_new_tokens reached or the context is full)
    top: list[list[tuple[int, float]]]  # with return_top=k, each running row's k most likely next tokens as
    # (id, probability) under the model's own distribution (softmax of the logits, before temperature, top-k and
    # top-p), most likely first; [] for stopped rows and when return_top=0


@torch.inference_mode()
def _last_logits(model: Transformer, ids: Tensor, cache: KVCache) -> Tensor:
    """Run ids (B, T) through the model after the cached positions; logits (B, V) of the last position."""
    logits, _ = model(ids, kv_cache=cache, last_only=True)  # (B, 1, V)
    return logits[:, -1]


@torch.inference_mode()
def _top_tokens(logits: Tensor, k: int) -> list[list[tuple[int, float]]]:
    probs, ids = logits.float().softmax(dim=-1).topk(min(k, logits.shape[-1]), dim=-1)  # (B, k) each
    return [list(zip(row_ids, row_probs)) for row_ids, row_probs in zip(ids.tolist(), probs.tolist())]


def generate(
    model: Transformer,
    prompt_ids: list[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    stop_ids: Collection[int] = frozenset(),
    num_samples: int = 1,
    return_top: int = 0,
    stop_strings: Collection[str] = (),
    tokenizer=None,
) -> Iterator[Step]:
    """Stream num_samples continuations of prompt_ids, one Step per new token (see the module docstring).

    seed None draws from a randomly seeded generator. Sampling options as in `sample_next`. A row also stops
    ("stop") at the token that completes one of `stop_strings` in its generated text (needs `tokenizer`, to see the
    tokens' bytes); that token is yielded, and `cut_at_stop` trims the decoded text.
    """
    vocab_size, seq_len = model.cfg.vocab_size, model.cfg.seq_len
    if not prompt_ids:
        raise LlmlabError("generation needs at least one prompt token (start from BOS for an empty prompt)")
    if not all(0 <= i < vocab_size for i in prompt_ids):
        bad = next(i for i in prompt_ids if not 0 <= i < vocab_size)
        raise LlmlabError(f"prompt token id {bad} is outside the model's vocabulary (ids 0..{vocab_size - 1})")
    if max_new_tokens < 0 or num_samples < 1 or return_top < 0:
        raise LlmlabError(
            f"need max_new_tokens >= 0, num_samples >= 1 and return_top >= 0; got {max_new_tokens}, "
            f"{num_samples} and {return_top}"
        )
    check_sampling(temperature, top_k, top_p)
    prompt = list(prompt_ids[-seq_len:])
    n_steps = min(max_new_tokens, seq_len - len(prompt) + 1)  # the last new token is never fed to the model
    if n_steps == 0:
        return
    device = model.embed.weight.device
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    stops = torch.tensor(sorted(stop_ids), dtype=torch.long, device=device)  # (n_stop,)
    watches = [StopStrings(stop_strings, tokenizer) for _ in range(num_samples)]

    cache = model.make_kv_cache(1, max_len=len(prompt) + n_steps - 1)
    logits = _last_logits(model, torch.tensor([prompt], device=device), cache)  # (1, V)
    if num_samples > 1:
        cache = cache.expand(num_samples)
        logits = logits.expand(num_samples, -1)  # (N, V)
    running = [True] * num_samples
    for index in range(n_steps):
        next_ids = sample_next(logits, temperature, top_k, top_p, generator)  # (N,)
        stopped = torch.isin(next_ids, stops).tolist()
        for row, token in enumerate(next_ids.tolist() if watches[0].active else []):
            if running[row]:
                stopped[row] = watches[row].push(token) or stopped[row]
        top = _top_tokens(logits, return_top) if return_top else [[] for _ in range(num_samples)]
        tokens = [t if run else None for t, run in zip(next_ids.tolist(), running)]
        top = [row if run else [] for row, run in zip(top, running)]
        running = [run and not stop for run, stop in zip(running, stopped)]
        last = index == n_steps - 1 or not any(running)
        finish = [None if run and not last else "length" if run else "stop" for run in running]
        yield Step(index, tokens, finish, top)
        if last:
            return
        logits = _last_logits(model, next_ids[:, None], cache)  # (N, V); stopped rows are fed along, ignored


class StopStrings:
    """Watches one row's generated text for stop strings, token by token (on bytes, so a stop string split across
    tokens, even inside a character, is seen at the token that completes it).

        watch = StopStrings(["\\n\\n"], tokenizer)
        if watch.push(token): ...   # this token completes a stop string
    """

    def __init__(self, stop_strings: Collection[str], tokenizer=None) -> None:
        self._stops = [text.encode("utf-8") for text in stop_strings if text]
        if self._stops and tokenizer is None:
            raise LlmlabError("stop_strings need the tokenizer (to read the generated text)")
        self._tokenizer = tokenizer
        self._tail = b""  # the last bytes generated: enough to hold any stop string

    @property
    def active(self) -> bool:
        return bool(self._stops)

    def push(self, token: int) -> bool:
        """True when `token` completes one of the stop strings."""
        if not self._stops:
            return False
        piece = self._tokenizer.token_bytes(token)
        longest = max(map(len, self._stops))
        tail = self._tail + piece
        self._tail = tail[-longest:]
        return any(text in tail[-(longest + len(piece) - 1) :] for text in self._stops)


def cut_at_stop(text: str, stop_strings: Collection[str]) -> str:
    """`text` up to (without) the first of `stop_strings` it contains."""
    cut = min((i for i in (text.find(s) for s in stop_strings if s) if i >= 0), default=len(text))
    return text[:cut]


def generate_ids(model: Transformer, prompt_ids: list[int], max_new_tokens: int, **options) -> list[list[int]]:
    """Each row's new token ids, without the stop id that ended it; options as `generate` takes them."""
    rows: list[list[int]] = [[] for _ in range(options.get("num_samples", 1))]
    stop_ids = options.get("stop_ids", frozenset())
    for step in generate(model, prompt_ids, max_new_tokens, **options):
        for row, token in zip(rows, step.tokens):
            if token is not None and token not in stop_ids:
                row.append(token)
    return rows


class TextStream:
    """Token ids -> text as they come: bytes of a character split across tokens are held until it is complete.

        stream = TextStream(tokenizer)
        for step in generate(...):
            print(stream.push(step.tokens[0]), end="", flush=True)
        print(stream.flush())

    Bytes that can never form valid UTF-8 become U+FFFD, as Tokenizer.decode does.
    """

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """The text that token_id completes (possibly "")."""
        return self._decoder.decode(self._tokenizer.token_bytes(token_id))

    def flush(self) -> str:
        """Whatever is held back at the end of the stream (U+FFFD for an unfinished character)."""
        return self._decoder.decode(b"", final=True)
