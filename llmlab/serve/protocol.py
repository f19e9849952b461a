"""The OpenAI wire format: request models (pydantic, unknown fields ignored), error bodies, response and chunk shapes.

Requests accepted (see docs of OpenAI's API; /work notes list the fields other servers take):
    POST /v1/chat/completions  model, messages [{role, content: str | [{type: "text", text}]}], max_tokens /
                               max_completion_tokens, temperature (0..2), top_p, top_k (vLLM extra; -1 or 0: off),
                               ignore_eos (vLLM extra: no stop at end-of-turn / EOS), stop (str | [str]), n (1 only),
                               seed, stream, stream_options.include_usage, and the llmlab extension conversation_id
                               (continue a stored conversation)
                               logprobs + top_logprobs (0..20): each answer token's log-probability under the model
                               (before temperature / top-k / top-p) and the most likely alternatives;
                               reasoning_effort (low | medium | high): self-consistency over 1 / 8 / 32 sampled answers
    POST /v1/completions       the same sampling fields, prompt (str | [str] | [int] | [[int]], one prompt), echo,
                               logprobs (0..5: the legacy tokens / token_logprobs / top_logprobs / text_offset)
No parameter is silently ignored: one this server cannot honour (response_format other than text, tools,
presence / frequency penalties, logit_bias, suffix, best_of > 1, or any unknown field) is answered 400, naming it;
`user` (an end-user id for the caller's own records) is accepted. Errors are
{"error": {"message", "type", "param", "code"}} with the HTTP status in `ApiError`.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ApiError(Exception):
    """An error answered to the client as OpenAI's error JSON with an HTTP status."""

    TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
             408: "timeout_error", 413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error",
             504: "timeout_error"}

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        kind = self.TYPES.get(self.status, "invalid_request_error" if self.status < 500 else "server_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class ChatMessage(_Lenient):
    role: str
    content: str | list[ContentPart] | None = None


class StreamOptions(_Lenient):
    include_usage: bool = False


class ResponseFormat(_Lenient):
    type: str


class _Sampling(_Lenient):
    model_config = ConfigDict(extra="allow")  # unknown fields are kept, then refused by `refuse_unsupported`
    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)  # None: 1.0, as OpenAI
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=-1)
    stop: str | list[str] | None = None
    n: int = 1
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False  # vLLM extra: generate max_tokens tokens whatever the model says (for benchmarks)
    user: str | None = None  # the caller's end-user id: accepted, not used
    presence_penalty: float = 0.0  # refused unless 0
    frequency_penalty: float = 0.0  # refused unless 0
    logit_bias: dict[str, float] | None = None  # refused unless empty


class ChatRequest(_Sampling):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = Field(None, ge=1)
    conversation_id: int | None = None  # llmlab extension: continue this stored conversation
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None  # only {"type": "text"}: there is no constrained decoding
    tools: list[dict] | None = None  # refused: tool calling is not served yet
    tool_choice: str | dict | None = None  # only "none"
    reasoning_effort: Literal["low", "medium", "high"] | None = None  # think harder: see llmlab.serve.thinking


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5)  # the legacy API's: how many alternatives per token
    suffix: str | None = None  # refused: no fill-in-the-middle
    best_of: int | None = None  # only 1


def refuse_unsupported(req: _Sampling) -> None:
    """ApiError 400 naming the first parameter of `req` this server cannot honour (see the module docstring)."""
    unknown = sorted(req.model_extra or {})
    if unknown:
        raise ApiError(400, f"unknown parameter(s) {', '.join(unknown)}: this server does not support them",
                       param=unknown[0])
    refused = {
        "presence_penalty": req.presence_penalty != 0, "frequency_penalty": req.frequency_penalty != 0,
        "logit_bias": bool(req.logit_bias),
        "response_format": getattr(req, "response_format", None) is not None and req.response_format.type != "text",
        "tools": bool(getattr(req, "tools", None)),
        "tool_choice": getattr(req, "tool_choice", None) not in (None, "none"),
        "suffix": getattr(req, "suffix", None) is not None, "best_of": getattr(req, "best_of", None) not in (None, 1),
    }
    why = {"response_format": "only {\"type\": \"text\"}: this server has no constrained (JSON) decoding",
           "tools": "tool calling is not served yet", "tool_choice": "tool calling is not served yet",
           "suffix": "no fill-in-the-middle", "best_of": "one completion per request"}
    for name, bad in refused.items():
        if bad:
            raise ApiError(400, f"{name} is not supported: {why.get(name, 'this server samples without it')}",
                           param=name)
    if isinstance(getattr(req, "logprobs", None), bool) and req.top_logprobs is not None and not req.logprobs:
        raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs")


def parse(model: type[BaseModel], body: dict) -> BaseModel:
    """Validate a request body; ApiError 400 naming the first bad field."""
    try:
        return model.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ApiError(400, f"invalid request: {where or 'body'}: {first['msg']}", param=where or None) from None


def message_text(message: ChatMessage) -> str:
    """A message's content as one string (text parts joined; other part types refused)."""
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    kinds = {part.type for part in message.content} - {"text"}
    if kinds:
        raise ApiError(400, f"unsupported content part type(s) {sorted(kinds)}: this server reads text only",
                       param="messages")
    return "".join(part.text or "" for part in message.content)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def envelope(rid: str, obj: str, model: str, choices: list[dict], **extra) -> dict:
    """The fields every response and chunk share."""
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": choices, **extra}


def chat_choice(text: str, finish: str | None, logprobs: dict | None = None) -> dict:
    return {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": logprobs,
            "finish_reason": finish}


def chat_delta(delta: dict, finish: str | None = None, logprobs: dict | None = None) -> dict:
    return {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}


def text_choice(text: str, finish: str | None = None, logprobs: dict | None = None) -> dict:
    return {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}


def _token(tok, token: int, logprob: float) -> dict:
    data = tok.token_bytes(token)
    return {"token": data.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(data)}


def chat_logprobs(tok, events: list, top: int) -> dict:
    """The chat API's logprobs object for engine events (tokens with their logprob and top alternatives)."""
    return {"content": [{**_token(tok, e.token, e.logprob),
                         "top_logprobs": [_token(tok, t, lp) for t, lp in e.top_logprobs[:top]]} for e in events]}


def completion_logprobs(tok, events: list, offset: int) -> dict:
    """The legacy completions API's logprobs object; text_offset counts characters from `offset` (the echoed
    prompt's length, or 0)."""
    tokens = [_token(tok, e.token, e.logprob)["token"] for e in events]
    offsets = [offset + sum(map(len, tokens[:i])) for i in range(len(tokens))]
    return {"tokens": tokens, "token_logprobs": [e.logprob for e in events],
            "top_logprobs": [{_token(tok, t, 0.0)["token"]: lp for t, lp in e.top_logprobs} for e in events],
            "text_offset": offsets}
