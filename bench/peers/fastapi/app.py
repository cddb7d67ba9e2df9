"""A KooGallery SaaS V2 production interface written the way a merchant typically writes it:
FastAPI, sqlite3, one POST endpoint for every activity. It is the peer that `scripts/bench.sh`
measures koogate against, not part of koogate.

    KOOGALLERY_ACCESS_KEY=... uvicorn app:app --host 127.0.0.1 --port 8000 --workers 2

It implements newInstance and queryInstance. Requests are authenticated with the V2 URL
signature (signature/timestamp/nonce over the raw body, or over its canonical form), within a
60-second window; every answer carries a Body-Sign header. Like KooGallery's official sample it
keeps no nonce cache.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import time
import uuid

from fastapi import FastAPI, Request, Response

ACCESS_KEY = os.environ["KOOGALLERY_ACCESS_KEY"].encode()
DB_PATH = os.environ.get("PEER_DB_PATH", "peer.db")
WINDOW_MS = int(os.environ.get("PEER_TIME_WINDOW_SECS", "60")) * 1000
FRONT_END_URL = "https://app.example.com/t/{}"

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

# One connection per worker process, used only from its event loop (each statement is a short
# local call, so the handlers run it directly instead of in a thread pool). WAL lets the other
# worker read while this one writes; sqlite3's default timeout (5 s) waits for the write lock.
# synchronous stays at its default, FULL: every commit is durable, as in koogate.
db = sqlite3.connect(DB_PATH)
db.execute("PRAGMA journal_mode=WAL")
db.execute(
    """CREATE TABLE IF NOT EXISTS instances (
        instance_id   TEXT PRIMARY KEY,
        order_id      TEXT NOT NULL,
        order_line_id TEXT NOT NULL,
        business_id   TEXT NOT NULL,
        user_name     TEXT NOT NULL,
        password      TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        UNIQUE (order_id, order_line_id)
    )"""
)
db.commit()


# --- KooGallery signatures -------------------------------------------------------------------


def hmac_sha256(message: bytes) -> bytes:
    return hmac.new(ACCESS_KEY, message, hashlib.sha256).digest()


def v2_signature(nonce: str, timestamp: str, payload: bytes) -> str:
    """hex(HMAC(key, key + nonce + timestamp + hex(HMAC(key, payload))))."""
    inner = hmac_sha256(payload).hex()
    return hmac_sha256(ACCESS_KEY + f"{nonce}{timestamp}{inner}".encode()).hex()


def canonical_body(raw: bytes) -> bytes:
    """Top-level keys sorted (Java String order), top-level nulls dropped, compact."""
    obj = json.loads(raw)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    top = {k: obj[k] for k in sorted(obj, key=lambda k: k.encode("utf-16-be")) if obj[k] is not None}
    return json.dumps(top, separators=(",", ":"), ensure_ascii=False).encode()


def signature_matches(signature: str, nonce: str, timestamp: str, raw: bytes) -> bool:
    received = signature.strip().lower()
    if hmac.compare_digest(received, v2_signature(nonce, timestamp, raw)):
        return True
    try:
        canonical = canonical_body(raw)
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        return False
    return hmac.compare_digest(received, v2_signature(nonce, timestamp, canonical))


def timestamp_is_fresh(timestamp: str) -> bool:
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    ts = int(timestamp)
    if len(timestamp) <= 10:  # some pages say seconds; every example is milliseconds
        ts *= 1000
    return abs(time.time_ns() // 1_000_000 - ts) <= WINDOW_MS


def answer(result_code: str, result_msg: str, **fields) -> Response:
    """HTTP 200, compact JSON (non-ASCII escaped), and its Body-Sign."""
    body = json.dumps(
        {"resultCode": result_code, "resultMsg": result_msg, **fields}, separators=(",", ":")
    ).encode()
    sign = base64.b64encode(hmac_sha256(body)).decode()
    return Response(
        content=body,
        media_type="application/json",
        headers={"Body-Sign": f'sign_type="HMAC-SHA256", signature= "{sign}"'},
    )


def invalid_param() -> Response:
    return answer("000002", "param is invalid")


# --- Activities --------------------------------------------------------------------------------


def new_instance(body: dict) -> Response:
    order_id, order_line_id = body.get("orderId"), body.get("orderLineId")
    business_id = body.get("businessId")
    if not all(isinstance(v, str) and v for v in (order_id, order_line_id, business_id)):
        return invalid_param()
    if body.get("testFlag") in ("1", 1):
        return answer("000000", "success.", instanceId=business_id)
    # Idempotent on (orderId, orderLineId): a repeated call gets the first call's instance.
    with db:
        db.execute(
            "INSERT INTO instances"
            " (instance_id, order_id, order_line_id, business_id, user_name, password, created_at)"
            " VALUES (?, ?, ?, ?, 'admin', ?, ?)"
            " ON CONFLICT (order_id, order_line_id) DO NOTHING",
            (uuid.uuid4().hex, order_id, order_line_id, business_id,
             secrets.token_urlsafe(12), int(time.time())),
        )
    instance_id = db.execute(
        "SELECT instance_id FROM instances WHERE order_id = ? AND order_line_id = ?",
        (order_id, order_line_id),
    ).fetchone()[0]
    return answer("000000", "success.", instanceId=instance_id)


def query_instance(body: dict) -> Response:
    ids = [i.strip() for i in str(body.get("instanceId") or "").split(",") if i.strip()]
    if not ids or len(ids) > 100:
        return invalid_param()
    if body.get("testFlag") in ("1", 1):
        info = [{"instanceId": i, "appInfo": {"frontEndUrl": FRONT_END_URL.format(i)}} for i in ids]
        return answer("000000", "success.", info=info)
    rows = db.execute(
        "SELECT instance_id, user_name, password FROM instances"
        f" WHERE instance_id IN ({','.join('?' * len(ids))})",
        ids,
    ).fetchall()
    if not rows:
        return answer("000003", "instance is invalid")
    info = [
        {
            "instanceId": instance_id,
            "appInfo": {
                "frontEndUrl": FRONT_END_URL.format(instance_id),
                "userName": user_name,
                "password": password,
            },
        }
        for instance_id, user_name, password in rows
    ]
    return answer("000000", "success.", info=info)


ACTIVITIES = {"newInstance": new_instance, "queryInstance": query_instance}


@app.post("/produce")
async def produce(
    request: Request, signature: str = "", timestamp: str = "", nonce: str = ""
) -> Response:
    raw = await request.body()
    if not timestamp_is_fresh(timestamp) or not nonce:
        return invalid_param()
    if not signature or not signature_matches(signature, nonce, timestamp, raw):
        return answer("000001", "token is invalid")
    try:
        body = json.loads(raw)
    except ValueError:
        return invalid_param()
    handler = ACTIVITIES.get(body.get("activity")) if isinstance(body, dict) else None
    if handler is None:
        return invalid_param()
    return handler(body)


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}
