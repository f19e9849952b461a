"""Continuous batching: one background thread owns a model and generates for many requests at once (used by serve).

    engine = BatchEngine(model, max_batch=16)
    engine.start()
    ticket = engine.submit(Request(prompt_ids, max_new_tokens=64, temperature=0, stop_ids={eot}), on_event)
    # on_event(Event(token, finish)) is called from the engine thread for every new token; finish is None until the
    # last event: "stop" (a stop id or stop string), "length" (max_new_tokens or the context is full),
    # "error" (event.error says why)
    ticket.cancel()                # e.g. the client went away: its row is freed at the next step
    engine.stop()

    outputs = complete_all(model, [Request(...), ...], max_batch=64)   # offline work (evals, labs): all, in order

Each loop iteration drops cancelled rows, prefills the requests that arrived (one at a time, a batch of one written
into a free row of a per-row KV cache, so a long prompt never pads the others; at most prefill_chunk prompt tokens per
iteration, so a long prompt is fed over several iterations while the others keep decoding; requests queued right
behind it with the same prompt, e.g. several samples of one question, start from a copy of its cache instead of
prefilling again), then runs one decode step
for all active rows together: a (n_active, 1) forward whose cost on a small model is close to a single row's, which is where
the throughput comes from. Rows are kept packed in 0..n_active-1: a finished row is replaced by the last one
(KVCache.move_row), so a decode step always reads a contiguous slice of the cache.

Each request has its own sampling settings, stop ids/strings, token budget and torch.Generator (seeded from its
seed; `sample_rows` draws all rows' tokens in one batched pass), so what it produces does not depend on what else is
running: greedy output is the same alone or batched (up to
float rounding of different batch shapes, which does not flip an argmax in practice; tests/test_batching.py checks it).
Like `generate`, a row stops at a stop id (that token is reported, with finish "stop") or when its budget or the
context is full; prompts must fit the context (callers truncate or refuse longer ones).

Run the checks: `.venv/bin/pytest tests/test_batching.py`.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

import torch

from llmlab.engine.generate import StopStrings, check_sampling, draw_filtered
from llmlab.errors import LlmlabError
from llmlab.model.transformer import Transformer

log = logging.getLogger(__name__)


class EngineBusy(LlmlabError):
    """The engine's waiting queue is full: the caller should retry later (the server answers 429)."""


@dataclass
class Request:
    """One generation: a prompt and how to continue it (sampling options as `sample_next` takes them)."""

    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None  # None: a randomly seeded generator
    stop_ids: Collection[int] = frozenset()
    stop_strings: Collection[str] = ()
    logprobs: bool = False  # report each token's log-probability under the model (before temperature / top-k / top-p)
    top_logprobs: int = 0  # and the n most likely tokens at each step with theirs (implies logprobs)


@dataclass(frozen=True)
class Event:
    """What the engine reports to a request: one new token, and on the last event why it ended."""

    token: int | None  # the new token id (a stop id too, as `generate` yields it); None only with finish "error"
    finish: str | None = None  # None: more to come; "stop" | "length" | "error"
    error: str | None = None
    logprob: float | None = None  # log p(token) under the model, for requests that asked (Request.logprobs)
    top_logprobs: tuple[tuple[int, float], ...] = ()  # the most likely tokens and their log p (Request.top_logprobs)


class Ticket:
    """A submitted request: `cancel()` frees its row at the engine's next step; no events follow a cancel."""

    def __init__(self, request: Request, on_event: Callable[[Event], None]) -> None:
        self.request, self.on_event = request, on_event
        self.cancelled = False
        self.done = False  # its last event (one with a finish) was sent

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class _Row:
    """A running request: its ticket, sampler state and progress."""

    ticket: Ticket
    generator: torch.Generator
    watch: StopStrings
    budget: int  # tokens it may still produce, the context's room included
    stop_ids: frozenset[int]
    last: int = -1  # the last token produced: the next decode step's input
    produced: int = 0
    fed: int = 0  # prompt tokens already in the KV cache (prefill may take several steps)


class BatchEngine:
    """A background thread that runs every request submitted to it, batching their decode steps (see module doc)."""

    def __init__(self, model: Transformer, tokenizer=None, max_batch: int = 16, max_waiting: int = 256,
                 max_len: int | None = None, prefill_chunk: int = 512) -> None:
        """max_len: the KV cache's length per row, the longest prompt + answer (None: the model's seq_len).
        prefill_chunk: prompt tokens prefilled per step; a longer prompt takes several steps, between which the
        running requests go on decoding (a long prompt does not stall them)."""
        if max_batch < 1 or max_waiting < 0 or prefill_chunk < 1:
            raise LlmlabError(f"need max_batch >= 1, max_waiting >= 0 and prefill_chunk >= 1, got {max_batch}, "
                              f"{max_waiting} and {prefill_chunk}")
        self.model, self.tokenizer = model, tokenizer
        self.max_batch, self.max_waiting, self.prefill_chunk = max_batch, max_waiting, prefill_chunk
        self.device = model.embed.weight.device
        self.cache = model.make_kv_cache(max_batch, max_len, per_row=True)  # (L, max_batch, K, max_len, D) x2
        self._rows: list[_Row] = []  # decoding rows, row i of the list in row i of the cache
        self._filling: _Row | None = None  # the request being prefilled, in the cache's last row until it is done
        self._waiting: deque[Ticket] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ---- the caller's side (any thread) ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="llmlab-batch-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the step in progress, tell every pending request (finish "error"), and end the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, request: Request, on_event: Callable[[Event], None]) -> Ticket:
        """Queue a request; `on_event` is called from the engine thread. LlmlabError for a request it cannot run,
        EngineBusy when no row is free and max_waiting requests are already queued."""
        self.check(request)
        ticket = Ticket(request, on_event)
        with self._wake:
            if self._stopping:
                raise EngineBusy("the engine is shutting down")
            free = self.max_batch - self.load["active"]  # a step may free rows meanwhile: a bound
            if len(self._waiting) >= self.max_waiting + max(free, 0):
                raise EngineBusy(f"all {self.max_batch} rows are busy and {len(self._waiting)} requests are waiting "
                                 "for this model; retry later")
            self._waiting.append(ticket)
            self._wake.notify()
        return ticket

    def check(self, request: Request) -> None:
        """LlmlabError naming what the engine cannot run in `request`."""
        vocab_size, max_len = self.model.cfg.vocab_size, self.cache.max_len
        ids = request.prompt_ids
        if not ids:
            raise LlmlabError("generation needs at least one prompt token")
        if len(ids) > max_len:
            raise LlmlabError(f"the prompt has {len(ids)} tokens; the model's context holds {max_len}")
        bad = next((i for i in ids if not 0 <= i < vocab_size), None)
        if bad is not None:
            raise LlmlabError(f"prompt token id {bad} is outside the model's vocabulary (ids 0..{vocab_size - 1})")
        if request.max_new_tokens < 1:
            raise LlmlabError(f"max_new_tokens must be >= 1, got {request.max_new_tokens}")
        check_sampling(request.temperature, request.top_k, request.top_p)
        StopStrings(request.stop_strings, self.tokenizer)  # raises when stop strings come without a tokenizer

    @property
    def load(self) -> dict:
        """{"active": running rows, "waiting": queued requests} (approximate: read without the engine's lock)."""
        return {"active": len(self._rows) + (self._filling is not None), "waiting": len(self._waiting)}

    # ---- the engine thread ----------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and not self._waiting and not self._rows and self._filling is None:
                    self._wake.wait()
                if self._stopping:
                    break
            try:
                self._step()
            except Exception as e:  # a bug or an out-of-memory must not take the server down: fail these requests
                log.exception("batch engine step failed")
                for ticket in self._running():
                    self._emit(ticket, Event(None, "error", f"generation failed: {type(e).__name__}: {e}"))
                self._rows.clear()
                self._filling = None
                self.cache.reset()
        with self._wake:
            pending = self._running() + list(self._waiting)
            self._rows.clear()
            self._filling = None
            self._waiting.clear()
        for ticket in pending:
            self._emit(ticket, Event(None, "error", "the server is shutting down"))

    def _running(self) -> list[Ticket]:
        return [row.ticket for row in self._rows] + ([self._filling.ticket] if self._filling else [])

    def _next_ticket(self) -> Ticket | None:
        """The oldest waiting request not cancelled, or None."""
        with self._wake:
            while self._waiting:
                ticket = self._waiting.popleft()
                if not ticket.cancelled:
                    return ticket
        return None

    @torch.inference_mode()
    def _step(self) -> None:
        """Prefill up to prefill_chunk prompt tokens of arriving requests, then one decode step for all rows."""
        self._free([i for i, row in enumerate(self._rows) if row.ticket.cancelled])
        if self._filling is not None and self._filling.ticket.cancelled:
            self._filling = None
        budget = self.prefill_chunk
        while budget > 0 and len(self._rows) < self.max_batch:
            if self._filling is None:
                ticket = self._next_ticket()
                if ticket is None:
                    break
                self._filling = self._new_row(ticket)
            budget -= self._prefill(budget)
        if self._rows:
            n = len(self._rows)
            self.cache.rows = slice(0, n)
            ids = torch.tensor([[row.last] for row in self._rows], device=self.device)  # (n, 1)
            logits, _ = self.model(ids, kv_cache=self.cache)  # (n, 1, V)
            self._advance(list(range(n)), logits[:, -1])

    def _new_row(self, ticket: Ticket) -> _Row:
        req = ticket.request
        generator = torch.Generator(device=self.device)
        if req.seed is None:
            generator.seed()
        else:
            generator.manual_seed(req.seed)
        budget = min(req.max_new_tokens, self.cache.max_len - len(req.prompt_ids) + 1)  # the last token is not fed
        return _Row(ticket, generator, StopStrings(req.stop_strings, self.tokenizer), budget, frozenset(req.stop_ids))

    def _prefill(self, budget: int) -> int:
        """Feed up to `budget` more prompt tokens of the request being prefilled (in the cache's last row, free while
        it is: rows are only taken when one is free); once its prompt is in, move it to the first free row, make it
        a decoding row and produce its first token. Returns the tokens fed."""
        row, at = self._filling, self.max_batch - 1
        prompt = row.ticket.request.prompt_ids
        ids = prompt[row.fed : row.fed + budget]
        self.cache.rows = slice(at, at + 1)
        if row.fed == 0:
            self.cache.pos[at] = 0
        logits, _ = self.model(torch.tensor([ids], device=self.device), kv_cache=self.cache)  # (1, T, V)
        row.fed += len(ids)
        if row.fed == len(prompt):
            i = len(self._rows)
            if i != at:
                self.cache.move_row(at, i)
            self._filling = None
            self._rows.append(row)
            started = [i] + self._share_prefill(i, prompt)
            self._advance(started, logits[:, -1].expand(len(started), -1))
        return len(ids)

    def _share_prefill(self, src: int, prompt: list[int]) -> list[int]:
        """Start the requests at the head of the queue that have the same prompt (several samples of one question)
        from row src's freshly prefilled cache instead of prefilling each again; returns their rows."""
        rows = []
        with self._wake:
            while self._waiting and len(self._rows) < self.max_batch and self._waiting[0].request.prompt_ids == prompt:
                ticket = self._waiting.popleft()
                if ticket.cancelled:
                    continue
                self.cache.move_row(src, len(self._rows))
                rows.append(len(self._rows))
                self._rows.append(self._new_row(ticket))
        return rows

    def _advance(self, rows: list[int], logits: torch.Tensor) -> None:
        """Sample the next token of each of `rows` from its logits (len(rows), V), report it, free finished rows."""
        finished = []
        tokens = sample_rows(logits, [self._rows[i] for i in rows])
        logprobs = token_logprobs(logits, tokens, [self._rows[i].ticket.request for i in rows])
        for i, token, (logprob, top) in zip(rows, tokens, logprobs):
            row = self._rows[i]
            row.last, row.produced = token, row.produced + 1
            stop = token in row.stop_ids
            stop = row.watch.push(token) or stop  # always pushed: the watch keeps the text's tail
            finish = "stop" if stop else "length" if row.produced >= row.budget else None
            if not self._emit(row.ticket, Event(token, finish, logprob=logprob, top_logprobs=top)) or finish:
                finished.append(i)
        self._free(finished)

    def _emit(self, ticket: Ticket, event: Event) -> bool:
        """Report an event; False (and the ticket cancelled) when the request is gone or its callback failed."""
        if ticket.cancelled or ticket.done:
            return False
        ticket.done = event.finish is not None
        try:
            ticket.on_event(event)
        except Exception:  # e.g. the server's event loop has closed: nobody is listening any more
            log.warning("dropping a request whose event callback failed", exc_info=True)
            ticket.cancel()
            return False
        return True

    def _free(self, finished: list[int]) -> None:
        """Release rows, keeping the active ones packed: the last active row moves into each freed slot."""
        for i in sorted(finished, reverse=True):  # highest first, so the row moved down is never a finished one
            last = len(self._rows) - 1
            if i != last:
                self.cache.move_row(last, i)
                self._rows[i] = self._rows[last]
            self._rows.pop()


@dataclass(frozen=True)
class Completion:
    """What a request produced when run to its end: the new token ids (a final stop id left out) and why it ended."""

    tokens: list[int]
    finish: str  # "stop" | "length"
    logprob: float | None = None  # the summed log-probability of the tokens (a final stop id included), if asked


def complete_all(model: Transformer, requests: list[Request], tokenizer=None, max_batch: int = 64,
                 on_finished: Callable[[], None] | None = None) -> list[Completion]:
    """Run every request to its end on one engine, `max_batch` rows decoding together, and return their completions
    in the requests' order: the offline use of continuous batching (evaluations, the labs' sampling). Prompts longer
    than the model's context keep their last tokens, as `generate` does; the KV cache is only as long as the longest
    prompt plus its budget needs. on_finished is called (on the engine's thread) as each request ends, e.g. to move
    a progress bar."""
    if not requests:
        return []
    seq_len = model.cfg.seq_len
    fitted = [replace(r, prompt_ids=r.prompt_ids[-seq_len:]) for r in requests]
    max_len = min(seq_len, max(len(r.prompt_ids) + r.max_new_tokens - 1 for r in fitted))
    engine = BatchEngine(model, tokenizer, max_batch=min(max_batch, len(fitted)), max_waiting=len(fitted),
                         max_len=max_len)
    produced: list[list[int]] = [[] for _ in fitted]
    logprob = [0.0 if r.logprobs else None for r in fitted]
    finishes: list[Event | None] = [None] * len(fitted)
    all_done = threading.Event()
    remaining = [len(fitted)]

    def listener(i: int) -> Callable[[Event], None]:
        def on_event(event: Event) -> None:  # called on the engine thread only
            if event.token is not None and not (event.finish == "stop" and event.token in fitted[i].stop_ids):
                produced[i].append(event.token)
            if event.logprob is not None:
                logprob[i] += event.logprob
            if event.finish is not None:
                finishes[i] = event
                remaining[0] -= 1
                if on_finished is not None:
                    on_finished()
                if not remaining[0]:
                    all_done.set()
        return on_event

    engine.start()
    try:
        for i, request in enumerate(fitted):
            engine.submit(request, listener(i))
        all_done.wait()
    finally:
        engine.stop()
    failed = next((e for e in finishes if e.finish == "error"), None)
    if failed is not None:
        raise LlmlabError(failed.error)
    return [Completion(tokens, event.finish, lp) for tokens, event, lp in zip(produced, finishes, logprob)]


@torch.inference_mode()
def token_logprobs(logits: torch.Tensor, tokens: list[int],
                   requests: list[Request]) -> list[tuple[float | None, tuple[tuple[int, float], ...]]]:
    """(log p(token), the top_logprobs most likely (id, log p)) of each row under its raw logits (n, V), for the rows
    whose request asks; (None, ()) for the others. One log-softmax over the rows that ask."""
    picked = [i for i, r in enumerate(requests) if r.logprobs or r.top_logprobs]
    out: list[tuple[float | None, tuple[tuple[int, float], ...]]] = [(None, ())] * len(tokens)
    if not picked:
        return out
    rows = torch.tensor(picked, device=logits.device)
    logp = logits[rows].float().log_softmax(dim=-1)  # (m, V)
    chosen = logp.gather(1, torch.tensor([tokens[i] for i in picked], device=logits.device)[:, None])[:, 0].tolist()
    most = max(requests[i].top_logprobs for i in picked)
    top_values, top_ids = logp.topk(most, dim=-1) if most else (logp[:, :0], logp[:, :0].long())  # (m, most)
    for row, i in enumerate(picked):
        n = requests[i].top_logprobs
        out[i] = (chosen[row], tuple(zip(top_ids[row, :n].tolist(), top_values[row, :n].tolist())))
    return out


@torch.inference_mode()
def sample_rows(logits: torch.Tensor, rows: list[_Row]) -> list[int]:
    """One token per row from logits (n, V), each with its own request's settings (as `sample_next` reads them).

    Batched: one argmax for the greedy rows, then one temperature / top-k / top-p draw (`draw_filtered`) for the rows
    without a cut and one for the rows with one, with one uniform number per row from that row's generator (what a
    row draws depends only on its own settings and seed).
    """
    reqs = [row.ticket.request for row in rows]
    hot = [i for i, req in enumerate(reqs) if req.temperature > 0]
    # argmax over (n, V) costs about a third of a top-k draw on the CPU: only when some row is greedy
    tokens = logits.argmax(dim=-1) if len(hot) < len(reqs) else torch.empty(len(reqs), dtype=torch.long,
                                                                                   device=logits.device)  # (n,)
    V, device = logits.shape[-1], logits.device
    uncut = [(reqs[i].top_k or V) >= V and (reqs[i].top_p or 1.0) >= 1 for i in range(len(reqs))]
    plain, cut = [i for i in hot if uncut[i]], [i for i in hot if not uncut[i]]
    # Rows drawn over the whole vocabulary and rows drawn over their cut candidates (most likely first) go as two
    # batches: how a row draws must depend on its own settings only, never on the other rows'.
    for group in (plain, cut):
        if not group:
            continue
        pick = torch.tensor(group, device=device)  # (m,)
        temps = torch.tensor([reqs[i].temperature for i in group], device=device)[:, None]  # (m, 1)
        top_k = [min(reqs[i].top_k or V, V) for i in group]
        top_p = [reqs[i].top_p or 1.0 for i in group]
        u = torch.cat([torch.rand(1, generator=rows[i].generator, device=device) for i in group])  # (m,)
        group_logits = logits.float() if len(group) == len(reqs) else logits[pick].float()
        tokens[pick] = draw_filtered(group_logits / temps,
                                     torch.tensor(top_k, device=device) if min(top_k) < V else None,
                                     torch.tensor(top_p, device=device) if min(top_p) < 1 else None, u)
    return tokens.tolist()
