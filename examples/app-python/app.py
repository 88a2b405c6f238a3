"""A WSGI app served by gunicorn under phased (see README.md).

Each gunicorn worker process owns one PostgreSQL pool, opened after the
fork (gunicorn.conf.py's post_fork hook calls open_pool) and closed when
the worker exits. The app never opens a connection at import time, so a
gunicorn master that preloads it holds none either.
"""

import hashlib
import json
import os
import threading
import time

import psycopg2
import psycopg2.pool

DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test?application_name=phased-app-python")

_pool = None
_pool_lock = threading.Lock()
_hoard = []  # what /alloc keeps, so the process grows


def pool_size():
    """One connection per thread: gunicorn's --threads, phased's {threads}."""
    return int(os.environ.get("DB_POOL_SIZE") or os.environ.get("PHASED_THREADS") or "1")


def open_pool():
    """Open this process's pool: DB_POOL_SIZE connections, all at once."""
    global _pool
    n = pool_size()
    with _pool_lock:
        _pool = psycopg2.pool.ThreadedConnectionPool(n, n, DATABASE_URL)
    print(f"pid {os.getpid()}: database pool of {n} open", flush=True)


def close_pool():
    """Close this process's pool (gunicorn's worker_exit hook)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.closeall()
            _pool = None
            print(f"pid {os.getpid()}: database pool closed", flush=True)


def _json(start_response, obj, status="200 OK"):
    body = json.dumps(obj).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _query(environ):
    out = {}
    for part in environ.get("QUERY_STRING", "").split("&"):
        k, _, v = part.partition("=")
        if k:
            out[k] = v
    return out


def _stream(n, ms):
    for i in range(n):
        yield f"piece {i} at {time.time():.3f}\n".encode()
        time.sleep(ms / 1000)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    q = _query(environ)
    if path == "/":
        return _json(start_response, {"app": "python", "pid": os.getpid(), "server": environ.get("SERVER_SOFTWARE", "")})
    if path == "/health":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"ok\n"]
    if path == "/db":
        if _pool is None:
            return _json(start_response, {"error": "no database pool in this process"}, "503 Service Unavailable")
        conn = _pool.getconn()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid(), now()::text")
                backend, now = cur.fetchone()
            conn.rollback()
        finally:
            _pool.putconn(conn)
        return _json(start_response, {"pid": os.getpid(), "backend": backend, "now": now, "pool": pool_size()})
    if path == "/echo":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(n) if n else b""
        return _json(start_response, {"pid": os.getpid(), "method": environ["REQUEST_METHOD"], "length": len(body),
                                      "sha256": hashlib.sha256(body).hexdigest()})
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Accel-Buffering", "no")])
        return _stream(int(q.get("n", "5")), int(q.get("ms", "200")))
    if path == "/slow":
        ms = int(q.get("ms", "1000"))
        start = time.time()
        time.sleep(ms / 1000)
        print(f"pid {os.getpid()}: slow request done after {ms} ms", flush=True)
        return _json(start_response, {"pid": os.getpid(), "slept_ms": ms, "start": start, "end": time.time()})
    if path == "/alloc":
        _hoard.append(bytearray(os.urandom(1)) * (int(q.get("mb", "100")) << 20))
        return _json(start_response, {"pid": os.getpid(), "hoard_mb": sum(len(b) for b in _hoard) >> 20})
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"not found\n"]
