"""The online scoring service (``medallion serve api --host 127.0.0.1 --port 8080``).

Usage::

    from medallion.serving.api import create_app, serve

    app = create_app(settings)            # a FastAPI app; its OpenAPI schema is at /openapi.json
    serve(settings, host="127.0.0.1", port=8080)

Endpoints:

- ``POST /score``: one transaction (landing schema) or a list of up to ``serving.max_batch``.
  Each answer: ``event_id, score, decision, model_name, model_version, precomputed, source,
  card_known, notes``. Bad input gets 422 with ``{"detail": [{"field", "index", "reason"}]}``;
  a body over ``serving.max_body_bytes`` or a longer list gets 413.
- ``GET /predictions/{event_id}``: the serving row from the store (404 if it holds none).
- ``GET /model``: the champion: name, version, alias, gate metrics, training data version,
  when it became champion.
- ``GET /health``: the process answers. ``GET /ready``: 200 once a checked champion is loaded
  and the store holds a generation, else 503 saying what is missing.

No answer carries a traceback: an unexpected error is 500 with its type, and the server logs it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from medallion.config import Settings
from medallion.errors import MedallionError
from medallion.serving.champion import ChampionWatcher
from medallion.serving.online import NotReady, OnlineScorer, Transaction
from medallion.serving.requests_log import RequestLog
from medallion.serving.store import OnlineStore
from medallion.serving.stores import open_store

log = logging.getLogger("medallion.serving")


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before it is parsed."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._too_large(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            return await self.app(scope, limited, send)
        except _TooLarge:
            return await self._too_large(scope, receive, send)

    async def _too_large(self, scope, receive, send):
        response = _error(413, "body", f"request body over serving.max_body_bytes ({self.limit} bytes)")
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def _error(status: int, field: str, reason: str, index: int | None = None) -> JSONResponse:
    problem = {"field": field, "reason": reason} | ({} if index is None else {"index": index})
    return JSONResponse({"detail": [problem]}, status_code=status)


def _problems(exc: ValidationError, index: int | None) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "body"
        reason = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            reason = "missing required field"
        elif error["type"] == "extra_forbidden":
            reason = "not a field of the landing schema"
        problem = {"field": field, "reason": reason}
        if index is not None:
            problem["index"] = index
        out.append(problem)
    return out


_TRANSACTION_SCHEMA = Transaction.model_json_schema()
_SCORE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [_TRANSACTION_SCHEMA, {"type": "array", "items": _TRANSACTION_SCHEMA}],
                }
            }
        },
    }
}


def create_app(
    settings: Settings,
    store: OnlineStore | None = None,
    watcher: ChampionWatcher | None = None,
    request_log: RequestLog | None = None,
    log_line: Callable[[str], None] = print,
) -> FastAPI:
    """The service; ``store``, ``watcher`` and ``request_log`` default to the conf's."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["store"] = store or open_store(settings)
        state["store"].ping()
        state["watcher"] = watcher or ChampionWatcher(settings, log=log_line)
        state["watcher"].refresh()
        state["watcher"].start()
        state["log"] = request_log or RequestLog.open(settings)
        state["log"].start()
        state["scorer"] = OnlineScorer(settings, state["store"], state["watcher"], state["log"])
        state["started"] = time.time()
        try:
            yield
        finally:
            state["watcher"].stop()
            state["log"].stop()
            if store is None:
                state["store"].close()

    app = FastAPI(
        title="medallion online scoring",
        description="Fraud scores from precomputed predictions, with the MLflow champion as the fallback.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, limit=settings.serving.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        problems = []
        for error in exc.errors():
            loc = [str(p) for p in error["loc"] if p != "body"]
            reason = "body is not valid JSON" if error["type"] == "json_invalid" else error["msg"]
            problems.append({"field": ".".join(loc) or "body", "reason": reason})
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(NotReady)
    async def _not_ready(request: Request, exc: NotReady):
        return JSONResponse({"detail": f"not ready: {exc}"}, status_code=503)

    @app.exception_handler(MedallionError)
    async def _medallion(request: Request, exc: MedallionError):
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); see the server log"}, status_code=500
        )

    @app.post("/score", openapi_extra=_SCORE_BODY)
    def score(payload: Any = Body(...)):  # noqa: B008 - FastAPI's idiom
        """Score one transaction or a list of them."""
        single = isinstance(payload, dict)
        items = [payload] if single else payload
        if not isinstance(items, list):
            return _error(422, "body", "expected a transaction object or a list of them")
        if not items:
            return _error(422, "body", "an empty list: send at least one transaction")
        limit = settings.serving.max_batch
        if len(items) > limit:
            return _error(413, "body", f"{len(items)} transactions > serving.max_batch {limit}")
        txns, problems = [], []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                problems.append({"field": "body", "reason": "expected a transaction object", "index": index})
                continue
            try:
                txns.append(Transaction.model_validate(item))
            except ValidationError as exc:
                problems += _problems(exc, None if single else index)
        if problems:
            return JSONResponse({"detail": problems}, status_code=422)
        answers = state["scorer"].score(txns)
        return answers[0] if single else answers

    @app.get("/predictions/{event_id}")
    def prediction(event_id: str):
        """The event's serving row, as the last materialize stored it."""
        row = state["store"].serving_row(event_id)
        if row is None:
            return _error(
                404,
                "event_id",
                f"no serving row for {event_id!r} in the online store (the last serving.serving_days days, "
                "as of the last medallion serve materialize)",
            )
        return row

    @app.get("/model")
    def model():
        """The champion the service scores with."""
        champion = state["watcher"].current
        if champion is None:
            raise NotReady(state["watcher"].problem or "the champion is not loaded yet")
        return {
            **champion.info,
            "scored_by": champion.scored_by,
            "scoring_note": champion.path_note or None,
            "problem": state["watcher"].problem,
        }

    @app.get("/health")
    def health():
        return {"status": "ok", "uptime_seconds": round(time.time() - state.get("started", time.time()), 1)}

    @app.get("/ready")
    def ready():
        missing = []
        champion = state["watcher"].current
        if champion is None:
            missing.append(f"champion: {state['watcher'].problem or 'not loaded yet'}")
        generation = state["store"].current()
        if generation is None:
            missing.append("online store: no generation yet (run medallion serve materialize)")
        if missing:
            return JSONResponse({"ready": False, "missing": missing}, status_code=503)
        return {
            "ready": True,
            "model_version": champion.version,
            "store": state["store"].describe(),
            "generation": generation.id,
            "generation_info": generation.info,
        }

    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the service on uvicorn until Ctrl-C / SIGTERM."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
