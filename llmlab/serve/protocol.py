"""The OpenAI wire format: request models (pydantic, unknown fields ignored), error bodies, response and chunk shapes.

Requests accepted (see docs of OpenAI's API; /work notes list the fields other servers take):
    POST /v1/chat/completions  model, messages [{role, content: str | [{type: "text", text}]}], max_tokens /
                               max_completion_tokens, temperature (0..2), top_p, top_k (vLLM extra; -1 or 0: off),
                               ignore_eos (vLLM extra: no stop at end-of-turn / EOS), stop (str | [str]), n (1 only),
                               seed, stream, stream_options.include_usage, and the llmlab extension conversation_id
                               (continue a stored conversation)
    POST /v1/completions       the same sampling fields, prompt (str | [str] | [int] | [[int]], one prompt), echo
Fields such as logprobs, presence_penalty or user are accepted and ignored. Errors are
{"error": {"message", "type", "param", "code"}} with the HTTP status in `ApiError`.
"""

from __future__ import annotations

import time
import uuid

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


class _Sampling(_Lenient):
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


class ChatRequest(_Sampling):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = Field(None, ge=1)
    conversation_id: int | None = None  # llmlab extension: continue this stored conversation


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False


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


def chat_choice(text: str, finish: str | None) -> dict:
    return {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": finish}


def chat_delta(delta: dict, finish: str | None = None) -> dict:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


def text_choice(text: str, finish: str | None = None) -> dict:
    return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
