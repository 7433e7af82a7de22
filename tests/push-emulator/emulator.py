#!/usr/bin/env python3
"""A stand-in Web Push service for tenwatch's tests, written independently of the gateway.

It behaves as a real push service would (RFC 8030 delivery, RFC 8291 aes128gcm encryption,
RFC 8292 VAPID): it hands out subscriptions as a browser's PushSubscription.toJSON() shows
them, verifies each push's VAPID JWT and decrypts its body with the subscription's own keys,
and records what it got. Control calls make a subscription answer 410/404/429/5xx or hang, so
that a sender's handling of those can be tested.

    POST /subscribe        {"applicationServerKey"?: b64url} -> {id, endpoint, keys, ...}
    POST /push/<id>        the push endpoint a sender calls
    POST /behave/<id>      {"mode": ok|gone|not_found|rate_limit|error|hang|redirect,
                            "count"?: n, "retry_after"?: s, "status"?: 5xx,
                            "to"?: another subscription's id (redirect: 307 to its endpoint,
                            with a body a sender must not show anyone)}
    GET  /messages/<id>    {"messages": [...], "attempts": [...], "rejections": [...]}
    GET  /stats            {"messages": accepted in all, "cpu_s": this process's CPU seconds}
    GET  /wait?messages=N&timeout_ms=T
                           /stats once N pushes in all were accepted, or after T ms
    GET  /healthz

Started with `--port 0`, it prints `listening http://127.0.0.1:PORT` once bound. Behind a TLS
front (an HTTP/2 reverse proxy, as real push services have), `--origin https://HOST:PORT` names
the front in the endpoints it hands out and is the `aud` it expects. It exits on
SIGTERM, SIGINT or when its standard input closes (so it never outlives the test that owns it).
"""

import argparse
import base64
import json
import secrets
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import jwt as vapid_jwt

# RFC 8030 §7.2: a push service must accept at least 4096 bytes of body; we accept no more,
# as the strictest real ones do.
MAX_BODY = 4096
# RFC 8292 §2: exp no more than 24 hours after the request.
MAX_EXP_AHEAD_S = 24 * 60 * 60
MODES = {"ok", "gone", "not_found", "rate_limit", "error", "hang", "redirect"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def now_ms() -> int:
    return int(time.time() * 1000)


class Reject(Exception):
    """A push refused with an HTTP status and a reason the sender and the test can read."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Subscription:
    """One browser's subscription: its keys, what it received, and how it is told to answer."""

    def __init__(self, sub_id: str, application_server_key):
        self.id = sub_id
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.p256dh = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.auth = secrets.token_bytes(16)
        # Set when subscribed with an applicationServerKey: then only that VAPID key may push.
        self.application_server_key = application_server_key
        self.messages = []
        self.attempts = []
        self.rejections = []
        self.behaviour = {"mode": "ok"}
        # Bumped by every behaviour change, so that hung requests know to let go.
        self.generation = 0


class State:
    """Everything the server knows, behind one lock; `changed` wakes hung requests."""

    def __init__(self, origin: str):
        self.origin = origin
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.subs = {}
        # Pushes accepted in all subscriptions.
        self.accepted = 0


class Handler(BaseHTTPRequestHandler):
    # Keep-alive, as a sender's pooled HTTP client expects; every answer has a Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "tenwatch-push-emulator"
    state: State  # set on the class by main()

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    # ---- plumbing

    def answer(self, status: int, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def read_body(self, limit: int):
        """The request body, or None (and the connection marked for closing) when over `limit`."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise Reject(411, "a Content-Length is required")
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            # The body is left unread, so this connection cannot carry another request.
            self.close_connection = True
            return None
        return self.rfile.read(length)

    def json_body(self):
        raw = self.read_body(64 * 1024)
        if raw is None:
            raise Reject(413, "control body over 64 KiB")
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise Reject(400, "body is not JSON")

    def route(self):
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        return parts[0], (parts[1] if len(parts) == 2 else None), len(parts)

    def do_GET(self):
        name, sub_id, n = self.route()
        if name == "healthz" and n == 1:
            return self.answer(200, {"ok": True})
        if name == "stats" and n == 1:
            with self.state.lock:
                return self.answer(200, self.stats())
        if name == "wait" and n == 1:
            try:
                return self.wait()
            except Reject as r:
                return self.answer(r.status, {"error": r.reason})
        if name == "messages" and sub_id:
            with self.state.lock:
                sub = self.state.subs.get(sub_id)
                if sub is None:
                    return self.answer(404, {"error": "no such subscription"})
                return self.answer(
                    200,
                    {
                        "messages": list(sub.messages),
                        "attempts": list(sub.attempts),
                        "rejections": list(sub.rejections),
                        "behaviour": dict(sub.behaviour),
                    },
                )
        self.answer(404, {"error": "no such route"})

    def do_POST(self):
        name, sub_id, n = self.route()
        try:
            if name == "subscribe" and n == 1:
                return self.subscribe()
            if name == "behave" and sub_id:
                return self.behave(sub_id)
            if name == "push" and sub_id:
                return self.push(sub_id)
            self.close_connection = True
            self.answer(404, {"error": "no such route"})
        except Reject as r:
            self.answer(r.status, {"error": r.reason})

    def stats(self):
        """What a benchmark reads (under the lock): pushes accepted and this process's CPU."""
        return {"messages": self.state.accepted, "cpu_s": time.process_time()}

    def wait(self):
        query = parse_qs(urlsplit(self.path).query)
        try:
            want = int(query["messages"][0])
            timeout_s = int(query.get("timeout_ms", ["10000"])[0]) / 1000
        except (KeyError, ValueError):
            raise Reject(400, "wait needs messages=N (and timeout_ms=T)")
        deadline = time.monotonic() + timeout_s
        with self.state.changed:
            while self.state.accepted < want and time.monotonic() < deadline:
                self.state.changed.wait(deadline - time.monotonic())
            return self.answer(200, self.stats())

    # ---- control

    def subscribe(self):
        body = self.json_body()
        key = body.get("applicationServerKey")
        if key is not None:
            try:
                raw = b64url_decode(key)
                ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
            except (ValueError, TypeError):
                raise Reject(400, "applicationServerKey is not a P-256 public key")
            key = b64url(raw)
        sub = Subscription(secrets.token_urlsafe(16), key)
        with self.state.lock:
            self.state.subs[sub.id] = sub
        self.answer(
            201,
            {
                "id": sub.id,
                "endpoint": f"{self.state.origin}/push/{sub.id}",
                "expirationTime": None,
                "keys": {"p256dh": b64url(sub.p256dh), "auth": b64url(sub.auth)},
            },
        )

    def behave(self, sub_id: str):
        body = self.json_body()
        mode = body.get("mode")
        if mode not in MODES:
            raise Reject(400, f"mode must be one of {sorted(MODES)}")
        behaviour = {"mode": mode}
        try:
            if mode in ("rate_limit", "error"):
                behaviour["count"] = int(body.get("count", 1))
                if behaviour["count"] < 1:
                    raise ValueError
            if mode == "rate_limit" or "retry_after" in body:
                behaviour["retry_after"] = int(body.get("retry_after", 1))
            if mode == "error":
                behaviour["status"] = int(body.get("status", 500))
                if not 500 <= behaviour["status"] <= 599:
                    raise ValueError
            if mode == "redirect":
                behaviour["to"] = str(body["to"])
        except (TypeError, ValueError, KeyError):
            raise Reject(
                400, "count >= 1, retry_after and a 5xx status must be integers; redirect needs to"
            )
        with self.state.changed:
            sub = self.state.subs.get(sub_id)
            if sub is None:
                raise Reject(404, "no such subscription")
            sub.behaviour = behaviour
            sub.generation += 1
            self.state.changed.notify_all()
        self.answer(200, behaviour)

    # ---- the push endpoint

    def push(self, sub_id: str):
        with self.state.lock:
            sub = self.state.subs.get(sub_id)
        if sub is None:
            self.close_connection = True
            return self.answer(404, {"error": "no such subscription"})
        try:
            status, headers, body = self.deliver(sub)
        except Reject as r:
            with self.state.lock:
                sub.rejections.append({"at_ms": now_ms(), "status": r.status, "reason": r.reason})
            status, headers, body = r.status, {}, {"error": r.reason}
        if status is None:
            self.close_connection = True  # hung, then let go: the request is never answered
            return
        self.answer(status, body, headers)

    def deliver(self, sub: Subscription):
        """(status, headers, body) for one push; status None when it hung and was let go."""
        arrived_at_ms = now_ms()
        attempt = {"at_ms": arrived_at_ms, "status": None}
        with self.state.lock:
            sub.attempts.append(attempt)

        def settle(status):
            with self.state.lock:
                attempt["status"] = status

        try:
            raw = self.read_body(MAX_BODY)
            if raw is None:
                raise Reject(413, f"body over {MAX_BODY} bytes")
            answer = self.behaviour_answer(sub)
            if answer is not None:
                settle(answer[0])
                return answer
            message = self.accept(sub, raw)
        except Reject as r:
            settle(r.status)
            raise
        message["arrived_at_ms"] = arrived_at_ms
        with self.state.changed:
            sub.messages.append(message)
            self.state.accepted += 1
            self.state.changed.notify_all()
        settle(201)
        location = f"{self.state.origin}/message/{secrets.token_urlsafe(12)}"
        return 201, {"Location": location}, None

    def behaviour_answer(self, sub: Subscription):
        """The scripted answer this subscription gives now, or None to handle the push."""
        with self.state.changed:
            b = sub.behaviour
            mode = b["mode"]
            if mode == "hang":
                generation = sub.generation
                while sub.generation == generation:
                    self.state.changed.wait()
                return None, {}, None
            if mode == "gone":
                return 410, {}, {"error": "subscription expired"}
            if mode == "not_found":
                return 404, {}, {"error": "no such subscription"}
            if mode == "redirect":
                location = f"{self.state.origin}/push/{b['to']}"
                return 307, {"Location": location}, {"error": "moved: secret-internal-detail"}
            if mode not in ("rate_limit", "error"):
                return None
            b["count"] -= 1
            if b["count"] <= 0:
                sub.behaviour = {"mode": "ok"}
            headers = {"Retry-After": str(b["retry_after"])} if "retry_after" in b else {}
            if mode == "rate_limit":
                return 429, headers, {"error": "too many requests"}
            return b["status"], headers, {"error": "push service error"}

    def accept(self, sub: Subscription, raw: bytes) -> dict:
        """Checks one push as a real service would; its record, or Reject."""
        ttl = self.headers.get("TTL")
        if ttl is None or not ttl.isdigit():
            raise Reject(400, "TTL header missing or not a non-negative integer")
        claims, key, aud_includes_port = self.check_vapid(sub)
        payload = None
        if raw:
            encoding = self.headers.get("Content-Encoding", "")
            if encoding.lower() != "aes128gcm":
                raise Reject(415, f"Content-Encoding {encoding!r}: only aes128gcm is accepted")
            try:
                plain = http_ece.decrypt(
                    raw,
                    private_key=sub.private_key,
                    auth_secret=sub.auth,
                    version="aes128gcm",
                )
            except Exception as e:  # http_ece raises several kinds for a bad ciphertext
                raise Reject(400, f"could not decrypt the aes128gcm body: {e}")
            payload = plain.decode("utf-8", errors="replace")
        return {
            "received_at_ms": now_ms(),
            "ttl": int(ttl),
            "urgency": self.headers.get("Urgency"),
            "topic": self.headers.get("Topic"),
            "jwt_claims": claims,
            "aud_includes_port": aud_includes_port,
            "payload": payload,
            "vapid_public_key": key,
        }

    def check_vapid(self, sub: Subscription):
        """RFC 8292: (claims, k, whether aud carried the port), or Reject(401/403)."""
        header = self.headers.get("Authorization")
        if not header:
            raise Reject(401, "no Authorization header")
        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            raise Reject(401, f"Authorization scheme {scheme!r} is not vapid")
        fields = {}
        for part in params.split(","):
            name, sep, value = part.strip().partition("=")
            if sep:
                fields[name.strip().lower()] = value.strip()
        token, key = fields.get("t"), fields.get("k")
        if not token or not key:
            raise Reject(401, "vapid Authorization needs t= and k=")
        try:
            jwt_header = json.loads(b64url_decode(token.split(".")[0]))
        except ValueError:
            raise Reject(401, "JWT header is not base64url JSON")
        if not isinstance(jwt_header, dict) or jwt_header.get("alg") != "ES256":
            raise Reject(401, "JWT alg must be ES256")
        try:
            claims = vapid_jwt.decode(token, key)
        except (InvalidSignature, ValueError):
            raise Reject(401, "JWT signature does not verify against k")
        if not isinstance(claims, dict):
            raise Reject(401, "JWT claims are not an object")
        key = b64url(b64url_decode(key))
        if sub.application_server_key and key != sub.application_server_key:
            raise Reject(403, "k is not the applicationServerKey this subscription was made with")
        aud = claims.get("aud")
        origin = self.state.origin
        without_port = origin.rsplit(":", 1)[0]
        if aud not in (origin, without_port):
            raise Reject(401, f"aud {aud!r} is not this push service's origin {origin}")
        exp = claims.get("exp")
        now = time.time()
        if not isinstance(exp, (int, float)) or exp <= now:
            raise Reject(401, f"exp {exp!r} is missing or past")
        if exp > now + MAX_EXP_AHEAD_S:
            raise Reject(401, f"exp {exp!r} is more than 24 hours ahead")
        sub_claim = claims.get("sub")
        if not isinstance(sub_claim, str) or not sub_claim.startswith(("mailto:", "https:")):
            raise Reject(401, "sub must be a mailto: or https: URI")
        return claims, key, aud == origin


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument(
        "--origin",
        help="the origin endpoints name and aud must be (a TLS front's); default this server's",
    )
    parser.add_argument(
        "--ignore-stdin", action="store_true", help="keep running when standard input closes"
    )
    args = parser.parse_args()

    # socketserver listens with a backlog of 5: a hundred pushes relayed at once (nginx opens
    # an upstream connection for each) overflowed it, and a dropped SYN is sent again after
    # the kernel's 1-s timeout, which showed as a push "arriving" a second late.
    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    # Hung requests are never joined: closing must not wait for them.
    server.block_on_close = False
    own = f"http://127.0.0.1:{server.server_address[1]}"
    origin = args.origin or own
    state = State(origin)
    Handler.state = state

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not args.ignore_stdin:
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    threading.Thread(target=server.serve_forever, daemon=True).start()

    print(f"listening {own}", flush=True)
    stop.wait()
    # No graceful drain: requests in flight are the test's, which is over. Daemon threads
    # (the server's, hung requests) end with the process.
    server.server_close()


if __name__ == "__main__":
    main()
