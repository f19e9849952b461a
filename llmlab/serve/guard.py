"""What every /v1 request passes before it reaches a model: API key, per-key rate limit, bounded JSON body.

    guard = Guard(settings, api_keys=["k1"])
    identity = guard.admit(request)        # ApiError 401 (no / wrong key) or 429 (over the rate limit)
    body = await read_json(request, settings.max_body_bytes, 60)  # ApiError 413 (too big), 408 (too slow) or 400

The rate limit is a token bucket per API key (per client address when keys are off): `rate_burst` requests at once,
refilled at `rate_limit_per_min`. Keys are compared in constant time; only a short hash of a key is ever stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time

from starlette.requests import Request

from llmlab.serve.protocol import ApiError
from llmlab.serve.settings import ServeSettings

MAX_BUCKETS = 10_000  # identities remembered; idle (refilled) buckets are forgotten past this, so memory is bounded


def key_label(key: str) -> str:
    """What identifies a key in logs and the store: a short hash, never the key itself."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


class Guard:
    def __init__(self, settings: ServeSettings, api_keys: list[str]) -> None:
        self.keys = [key.encode() for key in api_keys]
        self.rate = settings.rate_limit_per_min / 60.0  # tokens per second
        self.burst = float(settings.rate_burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # identity -> (tokens, time of last update)
        self._lock = threading.Lock()

    def admit(self, request: Request) -> str | None:
        """The caller's key label (None when keys are off); ApiError 401 or 429 when it may not go on."""
        label = None
        if self.keys:
            auth = request.headers.get("authorization", "")
            scheme, _, key = auth.partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                raise ApiError(401, "missing API key: send it as the header 'Authorization: Bearer KEY'",
                               code="invalid_api_key")
            key = key.strip().encode()
            if not any(hmac.compare_digest(key, known) for known in self.keys):
                raise ApiError(401, "invalid API key", code="invalid_api_key")
            label = key_label(key.decode())
        self._take(label or (request.client.host if request.client else "unknown"))
        return label

    def _take(self, identity: str) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets = {k: (t, at) for k, (t, at) in self._buckets.items()
                                 if t + (now - at) * self.rate < self.burst}
            tokens, at = self._buckets.get(identity, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens < 1:
                wait = (1 - tokens) / self.rate
                raise ApiError(429, f"rate limit exceeded: retry in {wait:.1f} s", code="rate_limit_exceeded",
                               headers={"Retry-After": str(max(1, round(wait)))})
            self._buckets[identity] = (tokens - 1, now)


async def read_json(request: Request, limit: int, timeout: float) -> dict:
    """The request body as a JSON object, reading at most `limit` bytes for at most `timeout` seconds (408 after)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes is over the limit of {limit} bytes",
                       code="request_too_large")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise ApiError(413, f"request body is over the limit of {limit} bytes", code="request_too_large")
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {timeout:.0f} s", code="timeout") from None
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"malformed JSON body: {e}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the body must be a JSON object, got {type(data).__name__}")
    return data
