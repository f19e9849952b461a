"""One request running on a BatchEngine, seen from the server's event loop: text deltas as the tokens come.

    gen = Generation(engine, tokenizer, request, deadline=time.monotonic() + 60)   # EngineBusy when queue is full
    async for delta in gen.deltas():      # TimeoutError past the deadline, GenerationFailed on an engine error
        ...
    gen.text, gen.finish_reason, gen.completion_tokens
    gen.logprobs, gen.take_logprobs()     # with request.logprobs: the events of the tokens shown (all / new ones)
    gen.cancel()                          # client gone: frees the engine row

The engine thread hands events over into an asyncio.Queue per request through a Mailbox (one loop wake-up per
batch). Stop ids are counted but never shown; text is decoded incrementally (a character split across tokens waits
for its last byte), and the end of the text that could still be the start of a stop string is held back, so no part
of a stop string is ever sent. Stop strings are also matched on the decoded text (the engine matches bytes), and the
request then ends there. With logprobs asked, a token's event is released with the delta that shows the last of its
text; tokens whose text a stop string cut away are not reported.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncIterator

from llmlab.engine.batching import BatchEngine, Event, Request
from llmlab.engine.generate import TextStream, cut_at_stop


class GenerationFailed(Exception):
    """The engine reported an error for this request."""


class Generation:
    """One request submitted to an engine, read from the event loop (see the module docstring)."""

    def __init__(self, engine: BatchEngine, tokenizer, request: Request, deadline: float) -> None:
        self.request, self.deadline = request, deadline
        self.text = ""  # what has been handed out so far
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self._stream = TextStream(tokenizer)
        self._held = ""  # decoded text not yet handed out (it may be the start of a stop string)
        self.logprobs: list[Event] = []  # events of the tokens whose text has been handed out (logprobs asked)
        self._unsent: list[list] = []  # [event, characters of its text] of tokens not handed out yet
        self._sent_chars = 0  # characters handed out and not yet matched to a released token
        self._new_logprobs = 0  # how many of self.logprobs take_logprobs has not returned yet
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        mailbox = Mailbox.of(asyncio.get_running_loop())
        self._ticket = engine.submit(request, lambda event: mailbox.post(self._events, event))

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def cancel(self) -> None:
        self._ticket.cancel()

    async def deltas(self) -> AsyncIterator[str]:
        """New text as it becomes safe to show; ends when the engine finishes the request. Tokens that arrived while
        the previous delta was being sent come out as one delta (fewer, larger chunks when the server is busy)."""
        while not self.done:
            try:
                async with asyncio.timeout(self.deadline - time.monotonic()):
                    event = await self._events.get()
            except TimeoutError:
                self.cancel()
                raise
            delta = self._take(event)
            while not self.done and not self._events.empty():
                delta += self._take(self._events.get_nowait())
            if delta:
                self.text += delta
                yield delta

    def _take(self, event: Event) -> str:
        """Apply one engine event; the text it makes safe to show."""
        if event.error is not None:
            raise GenerationFailed(event.error)
        stops = [s for s in self.request.stop_strings if s]
        self.completion_tokens += 1
        reporting = self.request.logprobs or self.request.top_logprobs
        if event.token not in self.request.stop_ids:
            piece = self._stream.push(event.token)
            self._held += piece
            if reporting:
                self._unsent.append([event, len(piece)])
        if event.finish:
            tail = self._stream.flush()
            self._held += tail
            if reporting and self._unsent:
                self._unsent[-1][1] += len(tail)
        # The engine watches stop strings on bytes; a stop string can also match decoded text that the bytes do not
        # (e.g. a U+FFFD standing for invalid bytes), so the text is checked too.
        hit = any(s in self._held for s in stops)
        if hit or event.finish:
            self._held = cut_at_stop(self._held, stops)
            self.finish_reason = "stop" if hit else event.finish
            if not event.finish:
                self.cancel()
            delta, self._held = self._held, ""
            return self._release(delta)
        keep = _stop_prefix_len(self._held, stops)
        delta, self._held = self._held[: len(self._held) - keep], self._held[len(self._held) - keep :]
        return self._release(delta)

    def _release(self, delta: str) -> str:
        """Move the events of the tokens whose whole text is now handed out into self.logprobs; returns delta."""
        self._sent_chars += len(delta)
        while self._unsent and self._unsent[0][1] <= self._sent_chars:
            event, length = self._unsent.pop(0)
            self._sent_chars -= length
            self.logprobs.append(event)
        return delta

    def take_logprobs(self) -> list[Event]:
        """The events released since the last call (for the stream's chunks)."""
        new, self._new_logprobs = self.logprobs[self._new_logprobs :], len(self.logprobs)
        return new

    async def run(self) -> str:
        """The whole text (non-streaming)."""
        async for _ in self.deltas():
            pass
        return self.text


class Mailbox:
    """Hands events from engine threads to one event loop, waking it once per batch rather than once per event (a
    decode step of 16 rows makes 16 events; each wake-up is a system call and a trip through the loop)."""

    _by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[tuple[asyncio.Queue, Event]] = []
        self._lock = threading.Lock()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Mailbox:
        if loop not in cls._by_loop:
            cls._by_loop[loop] = cls(loop)
        return cls._by_loop[loop]

    def post(self, queue: asyncio.Queue, event: Event) -> None:
        """From any thread: deliver `event` into `queue` on the loop (RuntimeError once the loop is closed)."""
        with self._lock:
            self._pending.append((queue, event))
            wake = len(self._pending) == 1  # the first since the last delivery schedules one
        if wake:
            self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for queue, event in pending:
            queue.put_nowait(event)


def _stop_prefix_len(text: str, stops: list[str]) -> int:
    """Length of the longest end of `text` that is the beginning of a stop string."""
    longest = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest
