"""The web UI of `llmlab serve`: a chat page and a labeling page, plain HTML/JS/CSS from llmlab/serve/static/ (no build
step, no CDN: it works offline), and the JSON endpoints they use beside the OpenAI-style API of llmlab/serve/app.py.

    app.include_router(ui_router(store, model_names=lambda: ["chat_dpo", "chat_v2"], authorize=guard.admit))

    GET  /                    chat page: model picker, system prompt, streamed answers (POST /v1/chat/completions,
                              stream: true), regenerate, thumbs up/down and "flag" with a reason on each answer
    GET  /label               labeling page: the review queue, write the ideal response, blind A/B/tie comparison
                              of two fresh answers from two served versions, the arena leaderboard, the guide
    GET  /static/<file>       the pages' scripts and styles
    POST /api/feedback        {"message_id", "kind": "up" | "down" | "flag", "reason"}
    GET  /api/queue?limit=N   {"items": [review items, flagged first]}
    POST /api/labels          {"message_id", "ideal", "labeler"}
    POST /api/comparisons     {"message_a", "message_b", "winner": "a" | "b" | "tie", "labeler"} -> the models
    GET  /api/leaderboard     {"rows": Bradley-Terry / Elo ratings of the served versions}
    GET  /api/instructions    {"markdown": docs/labeling.md}

The pages and static files are public; the /api/ endpoints pass `authorize` (the server's API-key check and rate
limit, as /v1 does), and the pages ask for a key once when the server answers 401. Bad input is answered 400 with {"error": {"message"}}, as the rest of the server answers errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import FileResponse, JSONResponse

from llmlab.errors import LlmlabError
from llmlab.monitor.arena import leaderboard
from llmlab.monitor.store import Store

STATIC = Path(__file__).parent / "static"
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "labeling.md"  # in the source tree (an editable install)
MEDIA_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message}}, status_code=status)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html", headers={"Cache-Control": "no-cache"})


def ui_router(store: Store, model_names: Callable[[], list[str]],
              authorize: Callable[[Request], object] | None = None) -> APIRouter:
    """The pages and /api/ endpoints over `store`; model_names() lists the versions served now; authorize(request)
    raises (e.g. 401) when a caller may not use the /api/ endpoints."""
    router = APIRouter()
    guarded = [Depends(authorize)] if authorize else []

    def call(action: Callable[[], dict]) -> JSONResponse:
        try:
            return JSONResponse(action())
        except LlmlabError as e:
            return _error(400, str(e))

    @router.get("/", include_in_schema=False)
    def chat_page():
        return _page("chat.html")

    @router.get("/label", include_in_schema=False)
    def label_page():
        return _page("label.html")

    @router.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file() or path.suffix not in MEDIA_TYPES:
            return _error(404, f"no static file {name!r}")
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})

    @router.post("/api/feedback", dependencies=guarded)
    def feedback(message_id: int = Body(...), kind: str = Body(...), reason: str | None = Body(None)):
        return call(lambda: {"id": store.add_feedback(message_id, kind, reason)})

    @router.get("/api/queue", dependencies=guarded)
    def queue(limit: int = 20):
        return call(lambda: {"items": store.review_queue(limit=max(1, min(limit, 200)))})

    @router.post("/api/labels", dependencies=guarded)
    def label(message_id: int = Body(...), ideal: str = Body(...), labeler: str | None = Body(None)):
        return call(lambda: {"id": store.add_label(message_id, ideal, labeler)})

    @router.post("/api/comparisons", dependencies=guarded)
    def compare(message_a: int = Body(...), message_b: int = Body(...), winner: str = Body(...),
                labeler: str | None = Body(None)):
        def add() -> dict:
            done = store.add_comparison(message_a, message_b, winner, labeler)
            return {"id": done, "models": {"a": store.message(message_a)["model"],
                                           "b": store.message(message_b)["model"]}}
        return call(add)

    @router.get("/api/leaderboard", dependencies=guarded)
    def board():
        games = [(r["model_a"], r["model_b"], r["winner"]) for r in store.comparison_rows()]
        served = list(dict.fromkeys([*model_names(), *(m["name"] for m in store.models())]))
        return {"rows": leaderboard(games, served), "served": model_names(), "comparisons": len(games)}

    @router.get("/api/instructions", dependencies=guarded)
    def instructions():
        if not GUIDE.is_file():
            return _error(404, f"the labeling guide is not installed ({GUIDE}); read docs/labeling.md in the "
                               "llmlab source tree")
        return {"markdown": GUIDE.read_text(encoding="utf-8")}

    return router
