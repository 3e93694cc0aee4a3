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

import json
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

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
                    "title": "Payload",
                }
            }
        },
    }
}
_SCORE_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Validation Error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
    }
}


class _Refused(Exception):
    """A request /score answers with a 4xx (``response``) before scoring anything."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def _json_body(body: bytes, content_type: str | None) -> Any:
    """The parsed JSON body of a /score request; :class:`_Refused` if it is not JSON."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise _Refused(
            _error(422, "body", "expected a transaction object or a list of them (application/json)")
        )
    if not body.strip():
        raise _Refused(_error(422, "body", "no body: expected a transaction object or a list of them"))
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        # The standard parser also reads NaN and integers past 64 bits, which the checks of the
        # transaction then refuse with their field.
        return json.loads(body)
    except (ValueError, RecursionError):
        raise _Refused(_error(422, "body", "body is not valid JSON")) from None


def _json(content: Any) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


@dataclass
class Service:
    """What the routes answer from, built when the app starts (its lifespan)."""

    settings: Settings
    store: OnlineStore
    watcher: ChampionWatcher
    requests: RequestLog
    scorer: OnlineScorer
    started: float


def _service(request: Request) -> Service:
    return request.app.state.service


router = APIRouter()


def _transactions(payload: Any, max_batch: int) -> tuple[list[Transaction], bool]:
    """The body as transactions (and whether it was a single one); :class:`_Refused` saying why not."""
    single = isinstance(payload, dict)
    items = [payload] if single else payload
    if not isinstance(items, list):
        raise _Refused(_error(422, "body", "expected a transaction object or a list of them"))
    if not items:
        raise _Refused(_error(422, "body", "an empty list: send at least one transaction"))
    if len(items) > max_batch:
        raise _Refused(_error(413, "body", f"{len(items)} transactions > serving.max_batch {max_batch}"))
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
        raise _Refused(JSONResponse({"detail": problems}, status_code=422))
    return txns, single


@router.post("/score", openapi_extra=_SCORE_BODY, responses=_SCORE_RESPONSES)
async def score(request: Request) -> Response:
    """Score one transaction or a list of them."""
    service = _service(request)
    scorer = service.scorer
    try:
        payload = _json_body(await request.body(), request.headers.get("content-type"))
        txns, single = _transactions(payload, service.settings.serving.max_batch)
    except _Refused as refused:
        return refused.response
    if not single:
        return _json(await run_in_threadpool(scorer.score, txns))
    # One transaction's look-up (two reads of the store) costs less than a hop to a worker
    # thread; a miss runs the champion and writes back on one, off the event loop.
    lookup = scorer.look_up(txns)
    answers = await run_in_threadpool(scorer.answer, lookup) if lookup.misses else scorer.answer(lookup)
    return _json(answers[0])


@router.get("/predictions/{event_id}")
def prediction(request: Request, event_id: str):
    """The event's serving row, as the last materialize stored it."""
    row = _service(request).store.serving_row(event_id)
    if row is None:
        return _error(
            404,
            "event_id",
            f"no serving row for {event_id!r} in the online store (the last serving.serving_days days, "
            "as of the last medallion serve materialize)",
        )
    return row


@router.get("/model")
def model(request: Request):
    """The champion the service scores with."""
    watcher = _service(request).watcher
    champion = watcher.current
    if champion is None:
        raise NotReady(watcher.problem or "the champion is not loaded yet")
    return {
        **champion.info,
        "scored_by": champion.scored_by,
        "scoring_note": champion.path_note or None,
        "problem": watcher.problem,
    }


@router.get("/health")
def health(request: Request):
    service = getattr(request.app.state, "service", None)
    started = service.started if service is not None else time.time()
    return {"status": "ok", "uptime_seconds": round(time.time() - started, 1)}


@router.get("/ready")
def ready(request: Request):
    service = _service(request)
    missing = []
    champion = service.watcher.current
    if champion is None:
        missing.append(f"champion: {service.watcher.problem or 'not loaded yet'}")
    generation = service.store.current()
    if generation is None:
        missing.append("online store: no generation yet (run medallion serve materialize)")
    if missing:
        return JSONResponse({"ready": False, "missing": missing}, status_code=503)
    return {
        "ready": True,
        "model_version": champion.version,
        "store": service.store.describe(),
        "generation": generation.id,
        "generation_info": generation.info,
    }


async def _invalid(request: Request, exc: RequestValidationError):
    problems = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"] if p != "body"]
        reason = "body is not valid JSON" if error["type"] == "json_invalid" else error["msg"]
        problems.append({"field": ".".join(loc) or "body", "reason": reason})
    return JSONResponse({"detail": problems}, status_code=422)


async def _not_ready(request: Request, exc: NotReady):
    return JSONResponse({"detail": f"not ready: {exc}"}, status_code=503)


async def _medallion(request: Request, exc: MedallionError):
    return JSONResponse({"detail": str(exc)}, status_code=503)


async def _unexpected(request: Request, exc: Exception):
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"detail": f"internal error ({type(exc).__name__}); see the server log"}, status_code=500
    )


def create_app(
    settings: Settings,
    store: OnlineStore | None = None,
    watcher: ChampionWatcher | None = None,
    request_log: RequestLog | None = None,
    log_line: Callable[[str], None] = print,
) -> FastAPI:
    """The service; ``store``, ``watcher`` and ``request_log`` default to the conf's."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        opened = store or open_store(settings)
        opened.ping()
        champion = watcher or ChampionWatcher(settings, log=log_line)
        champion.refresh()
        champion.start()
        requests = request_log or RequestLog.open(settings)
        requests.start()
        scorer = OnlineScorer(settings, opened, champion, requests)
        app.state.service = Service(settings, opened, champion, requests, scorer, time.time())
        try:
            yield
        finally:
            champion.stop()
            requests.stop()
            if store is None:
                opened.close()

    app = FastAPI(
        title="medallion online scoring",
        description="Fraud scores from precomputed predictions, with the MLflow champion as the fallback.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, limit=settings.serving.max_body_bytes)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(NotReady, _not_ready)
    app.add_exception_handler(MedallionError, _medallion)
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(router)
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the service on uvicorn until Ctrl-C / SIGTERM."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
