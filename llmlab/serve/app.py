"""The OpenAI-compatible HTTP server: a FastAPI app over one BatchEngine per served model (`llmlab serve` runs it).

    app = create_app({"dpo": Path("runs/x/chat_dpo"), "base": Path("runs/x/base")}, settings=ServeSettings(),
                     store=Store(Path("runs/x/serve.sqlite")))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints:
    POST /v1/chat/completions   chat models; streaming (server-sent events ending `data: [DONE]`) or not
    POST /v1/completions        prompt -> text, for base models (a text prompt opens like a pre-training document)
    GET  /v1/models             the served names
    GET  /health                {"status": "ok", "models": {name: {"active", "waiting"}}}; needs no key
The official `openai` client works unchanged (tests/test_serve.py). With a store, every accepted request is stored
before generating and its answer (whole, or partial on a disconnect, timeout or error) after, and the ids come back in
an extension field of the body and of every stream chunk: `"llmlab": {"conversation_id", "message_id"}` for a chat,
`"llmlab": {"completion_id"}` for a text completion; the web UI (llmlab/serve/ui.py) is mounted at /. Limits and
their status codes: see ServeSettings and guard.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request

from llmlab.engine.batching import BatchEngine, EngineBusy, Request as EngineRequest
from llmlab.engine.conversation import fit_history
from llmlab.errors import LlmlabError
from llmlab.serve.generation import Generation, GenerationFailed
from llmlab.serve.guard import Guard, read_json
from llmlab.serve.protocol import (ApiError, ChatRequest, CompletionRequest, chat_choice, chat_delta, chat_logprobs,
                                   completion_logprobs, envelope, message_text, new_id, parse, refuse_unsupported,
                                   text_choice, usage)
from llmlab.serve.settings import ServeSettings
from llmlab.serve.thinking import SelfConsistent, sample_requests
from llmlab.tokenizer.chat import render_prompt

log = logging.getLogger(__name__)


@dataclass
class Served:
    """A model being served: where it came from, weights, tokenizer and engine."""

    name: str
    spec: str  # what load_model read: a model folder, a .gguf file, hf:org/name, smollm2
    model: object  # Transformer
    tokenizer: object  # Tokenizer
    engine: BatchEngine
    created: int  # the model file's modification time (else the load time), as /v1/models reports it

    @property
    def context(self) -> int:
        """The longest sequence a request may use: the engine's KV cache length."""
        return self.engine.cache.max_len


def load_served(name: str, spec: str | Path, settings: ServeSettings, device: str) -> Served:
    from llmlab.model.loading import load_model

    model, tok, info = load_model(spec, device=device, quantize=settings.quantize)
    context = min(model.cfg.seq_len, settings.max_context or model.cfg.seq_len)
    engine = BatchEngine(model, tok, max_batch=settings.max_batch, max_waiting=settings.max_waiting,
                         max_len=context, prefill_chunk=settings.prefill_chunk)
    weights = Path(info.get("weights") or spec)
    created = int(weights.stat().st_mtime) if weights.exists() else int(time.time())
    log.info("serving %s (%s): context %d, KV cache %.1f MB", name, spec, context,
             2 * engine.cache.k.numel() * engine.cache.k.element_size() / 1e6)
    return Served(name, str(spec), model, tok, engine, created)


def create_app(models: dict[str, str | Path], *, settings: ServeSettings | None = None, api_keys: Sequence[str] = (),
               store=None, device: str = "cpu") -> FastAPI:
    """The app serving each model (any spec load_model reads) under its name; the engines run during its lifespan.

    api_keys: accepted keys (`Authorization: Bearer KEY` on every /v1 request); empty: no key needed.
    store: a llmlab.monitor.store.Store that records every chat exchange and text completion (None: nothing stored).
    """
    settings = settings or ServeSettings()
    if not models:
        raise LlmlabError("no models to serve: give at least one NAME=FOLDER")
    served = {name: load_served(name, spec, settings, device) for name, spec in models.items()}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        for s in served.values():
            s.engine.start()
        yield
        for s in served.values():
            s.engine.stop()

    app = FastAPI(title="llmlab", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    api = Api(served, settings, list(api_keys), store)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, server_error)
    app.add_api_route("/health", api.health, methods=["GET"])
    app.add_api_route("/v1/models", api.list_models, methods=["GET"])
    app.add_api_route("/v1/chat/completions", api.chat, methods=["POST"])
    app.add_api_route("/v1/completions", api.completions, methods=["POST"])
    if store is not None:
        for s in served.values():
            store.register_model(s.name, s.spec, {"vocab_size": s.model.cfg.vocab_size, "context": s.context})
        try:
            from llmlab.serve.ui import ui_router
        except ModuleNotFoundError:  # the web UI is optional: the API and the storing work without it
            log.warning("llmlab.serve.ui not found: serving the API without the web UI")
        else:
            app.include_router(ui_router(store, lambda: list(served), authorize=api.guard.admit))
    return app


async def api_error(_request: Request, e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


async def http_error(_request: Request, e: HTTPException) -> JSONResponse:
    return JSONResponse(ApiError(e.status_code, str(e.detail)).body(), status_code=e.status_code)


async def server_error(_request: Request, e: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=e)
    return JSONResponse(ApiError(500, "internal server error").body(), status_code=500)


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


class Api:
    """The endpoint handlers, sharing the served models, the limits, the guard and the store."""

    def __init__(self, served: dict[str, Served], settings: ServeSettings, api_keys: list[str], store) -> None:
        self.served, self.settings, self.store = served, settings, store
        self.guard = Guard(settings, api_keys)

    async def health(self) -> dict:
        return {"status": "ok", "models": {name: s.engine.load for name, s in self.served.items()}}

    async def list_models(self, request: Request) -> dict:
        self.guard.admit(request)
        return {"object": "list", "data": [{"id": name, "object": "model", "created": s.created, "owned_by": "llmlab"}
                                           for name, s in self.served.items()]}

    # ---- request checks -------------------------------------------------------------------------------------------

    async def read(self, request: Request, model: type, deadline: float):
        """The body validated as `model` (ApiError 400 / 408 / 413)."""
        return parse(model, await read_json(request, self.settings.max_body_bytes, deadline - time.monotonic()))

    def lookup(self, name: str) -> Served:
        if name not in self.served:
            raise ApiError(404, f"model {name!r} does not exist; served: {', '.join(self.served)}", param="model",
                           code="model_not_found")
        return self.served[name]

    def engine_request(self, s: Served, prompt: list[int], req, max_tokens: int | None, default: int,
                       stop_ids: set[int], top_logprobs: int | None) -> EngineRequest:
        """The engine's request; top_logprobs: None (no logprobs) or how many alternatives per token."""
        refuse_unsupported(req)
        if req.n != 1:
            raise ApiError(400, f"n={req.n} is not supported: this server returns one choice (n=1)", param="n")
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        if len(stops) > self.settings.max_stop:
            raise ApiError(400, f"at most {self.settings.max_stop} stop sequences, got {len(stops)}", param="stop")
        limit = min(self.settings.max_prompt_tokens or s.context - 1, s.context - 1)
        if len(prompt) > limit:
            raise ApiError(400, f"the prompt is {len(prompt)} tokens, over this server's limit of {limit} for "
                           f"{s.name!r} (context {s.context})", param="messages",
                           code="context_length_exceeded")
        return EngineRequest(
            prompt, min(max_tokens or default, self.settings.max_tokens),
            temperature=1.0 if req.temperature is None else req.temperature,
            top_k=req.top_k if req.top_k and req.top_k > 0 else None, top_p=req.top_p, seed=req.seed,
            stop_ids=set() if req.ignore_eos else stop_ids, stop_strings=[x for x in stops if x],
            logprobs=top_logprobs is not None, top_logprobs=top_logprobs or 0)

    def start(self, s: Served, req: EngineRequest, deadline: float) -> Generation:
        try:
            return Generation(s.engine, s.tokenizer, req, deadline)
        except EngineBusy as e:
            raise ApiError(429, f"model {s.name!r} is busy: {e}", code="server_busy", headers={"Retry-After": "1"})
        except LlmlabError as e:
            raise ApiError(400, str(e)) from None

    # ---- POST /v1/chat/completions -------------------------------------------------------------------------------

    async def chat(self, request: Request):
        deadline = time.monotonic() + self.settings.request_timeout_s
        key = self.guard.admit(request)
        req: ChatRequest = await self.read(request, ChatRequest, deadline)
        s = self.lookup(req.model)
        if not req.messages:
            raise ApiError(400, "messages must not be empty", param="messages")
        if len(req.messages) > self.settings.max_messages:
            raise ApiError(400, f"{len(req.messages)} messages, over this server's limit of "
                           f"{self.settings.max_messages}", param="messages")
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": message_text(m)}
                    for m in req.messages]
        max_tokens = req.max_completion_tokens or req.max_tokens
        room = s.context - min(max_tokens or self.settings.default_max_tokens, self.settings.max_tokens)
        try:
            fitted, _ = fit_history(s.tokenizer, messages, max(1, room))
            prompt = render_prompt(s.tokenizer, fitted)
        except LlmlabError as e:
            raise ApiError(400, f"messages: {e}", param="messages") from None
        special = s.tokenizer.special_ids
        top = (req.top_logprobs or 0) if req.logprobs else None
        ereq = self.engine_request(s, prompt, req, max_tokens, self.settings.default_max_tokens,
                                   {special["end_of_turn"], s.tokenizer.eos_id}, top)
        if req.reasoning_effort in (None, "low"):
            gen = self.start(s, ereq, deadline)
        else:
            gens = []
            try:
                for r in sample_requests(ereq, req.reasoning_effort):
                    gens.append(self.start(s, r, deadline))
            except ApiError:
                for g in gens:
                    g.cancel()
                raise
            gen = SelfConsistent(gens, req.reasoning_effort)
        extra, finish_store = {}, lambda reason: None
        if self.store is not None:
            conv, msg = stored_before_answering(gen, lambda: self.store.start_exchange(
                model=s.name, messages=messages, params=stored_params(ereq), api_key=key,
                conversation_id=req.conversation_id))
            extra = {"llmlab": {"conversation_id": conv, "message_id": msg}}

            def finish_store(reason: str) -> None:
                self.store.finish_exchange(msg, gen.text, reason, usage(len(prompt), gen.completion_tokens))

        rid = new_id("chatcmpl")
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            logprobs = None if top is None else (lambda events: chat_logprobs(s.tokenizer, events, top))
            chunks = ChunkMaker(rid, "chat.completion.chunk", s.name, extra, len(prompt), include_usage,
                                lambda delta, finish=None, lp=None: chat_delta(delta, finish, lp), logprobs)
            return StreamingResponse(stream(gen, chunks, {"role": "assistant", "content": ""}, finish_store),
                                     media_type="text/event-stream")
        await collect(request, gen, finish_store)
        lp = None if top is None else chat_logprobs(s.tokenizer, gen.logprobs, top)
        if isinstance(gen, SelfConsistent):
            extra = {"llmlab": {**extra.get("llmlab", {}), "reasoning": gen.reasoning}}
        return envelope(rid, "chat.completion", s.name, [chat_choice(gen.text, gen.finish_reason, lp)],
                        usage=usage(len(prompt), gen.completion_tokens), **extra)

    # ---- POST /v1/completions ------------------------------------------------------------------------------------

    async def completions(self, request: Request):
        deadline = time.monotonic() + self.settings.request_timeout_s
        key = self.guard.admit(request)
        req: CompletionRequest = await self.read(request, CompletionRequest, deadline)
        s = self.lookup(req.model)
        prompt_text, prompt = completion_prompt(req.prompt, s.tokenizer)
        ereq = self.engine_request(s, prompt, req, req.max_tokens, 16, {s.tokenizer.eos_id}, req.logprobs)
        gen = self.start(s, ereq, deadline)
        extra, finish_store = {}, lambda reason: None
        if self.store is not None:
            stored = stored_before_answering(gen, lambda: self.store.start_completion(
                model=s.name, prompt=prompt_text, params=stored_params(ereq), api_key=key))
            extra = {"llmlab": {"completion_id": stored}}

            def finish_store(reason: str) -> None:
                self.store.finish_completion(stored, gen.text, reason, usage(len(prompt), gen.completion_tokens))

        rid = new_id("cmpl")
        echo = prompt_text if req.echo else ""
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            offset = [len(echo)]  # characters streamed before the next chunk's tokens

            def streamed_logprobs(events: list) -> dict:
                out = completion_logprobs(s.tokenizer, events, offset[0])
                offset[0] += sum(map(len, out["tokens"]))
                return out

            chunks = ChunkMaker(rid, "text_completion", s.name, extra, len(prompt), include_usage,
                                lambda delta, finish=None, lp=None: text_choice(delta.get("content", ""), finish, lp),
                                None if req.logprobs is None else streamed_logprobs)
            first = {"content": echo} if echo else None
            return StreamingResponse(stream(gen, chunks, first, finish_store), media_type="text/event-stream")
        await collect(request, gen, finish_store)
        lp = None if req.logprobs is None else completion_logprobs(s.tokenizer, gen.logprobs, len(echo))
        return envelope(rid, "text_completion", s.name, [text_choice(echo + gen.text, gen.finish_reason, lp)],
                        usage=usage(len(prompt), gen.completion_tokens), **extra)


def stored_params(ereq: EngineRequest) -> dict:
    """The sampling settings a stored answer records."""
    return {"temperature": ereq.temperature, "top_p": ereq.top_p, "top_k": ereq.top_k, "seed": ereq.seed,
            "max_tokens": ereq.max_new_tokens, "stop": list(ereq.stop_strings)}


def stored_before_answering(gen: Generation, store_request):
    """store_request()'s result (the stored request's ids); if storing fails, the request is not accepted, and its
    generation is cancelled to free the engine's row."""
    try:
        return store_request()
    except BaseException:
        gen.cancel()
        raise


def completion_prompt(prompt, tok) -> tuple[str, list[int]]:
    """(prompt text, prompt ids): text opens like a pre-training document (BOS first where the tokenizer's documents
    have one, as llmlab's do and SmolLM2's do not; always for an empty text); ids are taken as given."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
        if len(prompt) != 1:
            raise ApiError(400, f"{len(prompt)} prompts in one request: send one prompt per request", param="prompt")
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt, [tok.bos_id] * (tok.add_bos or not prompt) + tok.encode(prompt)
    if not prompt:
        raise ApiError(400, "the prompt must not be an empty list of token ids", param="prompt")
    bad = next((i for i in prompt if not 0 <= i < tok.vocab_size), None)
    if bad is not None:
        raise ApiError(400, f"prompt token id {bad} is outside the vocabulary (0..{tok.vocab_size - 1})",
                       param="prompt")
    return tok.decode(prompt), list(prompt)


async def collect(request: Request, gen: Generation, finish_store) -> None:
    """Run a non-streaming generation to its end; the store gets the answer, partial on a timeout, a failure or a
    client that went away (its generation is then cancelled, freeing the row for others; nobody reads the 499)."""
    run, gone = asyncio.ensure_future(gen.run()), asyncio.ensure_future(disconnected(request))
    try:
        await asyncio.wait([run, gone], return_when=asyncio.FIRST_COMPLETED)
        if not run.done():
            run.cancel()
            gen.cancel()
            finish_store("cancelled")
            raise ApiError(499, "the client disconnected before the answer was complete")
        run.result()
    except TimeoutError:
        finish_store("timeout")
        raise ApiError(504, "generation timed out (request_timeout_s)", code="timeout") from None
    except GenerationFailed as e:
        finish_store("error")
        raise ApiError(500, str(e)) from None
    except asyncio.CancelledError:  # the server is stopping: keep what was made
        gen.cancel()
        run.cancel()
        finish_store("cancelled")
        raise
    finally:
        gone.cancel()
    finish_store(gen.finish_reason)


async def disconnected(request: Request) -> None:
    """Returns when the client disconnects (the body has been read, so the next ASGI message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@dataclass
class ChunkMaker:
    """Stream chunks of one response, in OpenAI's shape."""

    rid: str
    obj: str
    model: str
    extra: dict
    prompt_tokens: int
    include_usage: bool
    choice: object  # (delta: dict, finish=None, logprobs=None) -> the choice dict
    logprobs: object = None  # (events) -> the choice's logprobs object; None: logprobs not asked

    def __call__(self, delta: dict, finish: str | None = None, events: list | None = None) -> dict:
        lp = self.logprobs(events or []) if self.logprobs is not None and events is not None else None
        return envelope(self.rid, self.obj, self.model, [self.choice(delta, finish, lp)], **self.extra)

    def usage(self, completion_tokens: int) -> dict:
        return envelope(self.rid, self.obj, self.model, [], usage=usage(self.prompt_tokens, completion_tokens),
                        **self.extra)


async def stream(gen: Generation, chunks: ChunkMaker, first: dict | None, finish_store):
    """Server-sent events: an opening chunk, one per text delta, the finish chunk, usage if asked, `[DONE]`.

    A timeout or engine failure ends the stream with an error event; a client that goes away cancels the generation
    (Starlette cancels this generator), and in every case the store gets what was made.
    """
    reason = "cancelled"
    try:
        if first is not None:
            yield sse(chunks(first))
        async for delta in gen.deltas():
            yield sse(chunks({"content": delta}, events=gen.take_logprobs()))
        yield sse(chunks({}, gen.finish_reason, events=gen.take_logprobs() or None))
        if chunks.include_usage:
            yield sse(chunks.usage(gen.completion_tokens))
        reason = gen.finish_reason
    except TimeoutError:
        reason = "timeout"
        yield sse(ApiError(504, "generation timed out (request_timeout_s)", code="timeout").body())
    except GenerationFailed as e:
        reason = "error"
        yield sse(ApiError(500, str(e)).body())
    finally:
        if not gen.done:
            gen.cancel()
        finish_store(reason)
    yield sse("[DONE]")
