"""The OpenAI-compatible server (`llmlab serve`): several models by name, continuously batched, with limits.

    app.py         create_app: FastAPI endpoints /v1/chat/completions, /v1/completions, /v1/models, /health
    generation.py  Generation: one request on a BatchEngine as async text deltas (stop strings held back)
    guard.py       API keys, per-key token-bucket rate limit, bounded JSON bodies
    protocol.py    OpenAI request models (unknown fields ignored), error JSON, response / chunk shapes
    settings.py    ServeSettings: every limit, with its status code
    ui.py          the web UI and feedback / labeling endpoints over the conversation store (llmlab.monitor.store)
"""
