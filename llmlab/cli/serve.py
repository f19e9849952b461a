"""`llmlab serve`: an OpenAI-compatible HTTP server for one or more model folders, with continuous batching.

    llmlab serve --models '[dpo=runs/x/chat_dpo, sft=runs/x/chat_sft, base=runs/x/base]'
    llmlab serve --models '[runs/x/chat_dpo]' --db runs/x/serve.sqlite          # name: the folder's name
    llmlab serve --models '[dpo=runs/x/chat_dpo]' --host 0.0.0.0 --api_keys '[s3cret]'
    LLMLAB_API_KEYS=k1,k2 llmlab serve --models '[dpo=runs/x/chat_dpo]' --settings.max_batch 32

Then any OpenAI client: `OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="s3cret")`, model="dpo". Limits (batch,
queue, prompt and answer lengths, body size, timeout, rate limit) are the `--settings.*` options (ServeSettings).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

from llmlab.errors import LlmlabError
from llmlab.serve.settings import ServeSettings


def serve(
    *,
    models: list[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    db: Path | None = None,
    api_keys: list[str] | None = None,
    insecure_no_keys: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    settings: ServeSettings = ServeSettings(),
) -> None:
    """Serve model folders over HTTP with the OpenAI API (chat completions, completions, models) until Ctrl-C.

    Args:
        models: what to serve, each NAME=MODEL (or MODEL, named after it): MODEL is an llmlab model folder (e.g.
            runs/x/chat_dpo, chat_sft, base), a Hugging Face Llama/Qwen3 folder, a .gguf file, hf:org/name or
            smollm2.
        host: address to listen on. A non-loopback address (e.g. 0.0.0.0) requires API keys.
        port: TCP port.
        db: SQLite file where every chat exchange and text completion is stored (and the web UI's feedback and
            labels); None: none kept.
        api_keys: accepted API keys (clients send `Authorization: Bearer KEY`); default: the comma-separated
            LLMLAB_API_KEYS environment variable, else none (allowed on a loopback host only).
        insecure_no_keys: allow a non-loopback host without API keys (anyone who can reach it may use it).
        device: where the models run (cpu, cuda, cuda:1, ...).
        threads: torch CPU threads (None: torch's default, one per core). On a machine busy with other work, 1 can be
            several times faster: threads that wait for each other's time slices stall every small matmul.
        settings: the server's limits.
    """
    import torch
    import uvicorn

    from llmlab.serve.app import create_app

    if threads is not None:
        torch.set_num_threads(threads)
    specs = parse_models(models)
    if api_keys is None:
        api_keys = [k.strip() for k in os.environ.get("LLMLAB_API_KEYS", "").split(",") if k.strip()]
    if not api_keys and not is_loopback(host) and not insecure_no_keys:
        raise LlmlabError(f"--host {host} is reachable from other machines: give --api_keys (or LLMLAB_API_KEYS), "
                          "or pass --insecure_no_keys to serve without keys")
    store = None
    if db is not None:
        from llmlab.monitor.store import Store

        store = Store(Path(db))
    app = create_app(specs, settings=settings, api_keys=api_keys, store=store, device=device)
    print(f"llmlab serve: {', '.join(f'{n}={p}' for n, p in specs.items())} on http://{host}:{port}/v1"
          + (f", storing chats in {db}" if db else ""))
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


def parse_models(entries: list[str]) -> dict[str, str]:
    """{"dpo": "runs/x/chat_dpo"} from ["dpo=runs/x/chat_dpo"]; a bare MODEL is named after its last path part
    (without .gguf); LlmlabError for empty or duplicate names (load_model reports models it cannot read)."""
    if not entries:
        raise LlmlabError("--models is empty: give at least one NAME=MODEL")
    out: dict[str, str] = {}
    for entry in entries:
        name, eq, spec = entry.partition("=")
        if eq:
            name, spec = name.strip(), spec.strip()
        else:
            spec = entry.strip()
            name = spec.rstrip("/").split("/")[-1].split(":")[-1].removesuffix(".gguf")
        if not name or not spec or name in out:
            raise LlmlabError(f"--models entry {entry!r}: {'duplicate' if name in out else 'empty'} model name or model")
        out[name] = spec
    return out


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except (socket.gaierror, ValueError):
            return False
