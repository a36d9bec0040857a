"""A local HTTP server for real-format fixture data, with fault injection.

It stands in for a bucket, a PyChunkedGraph server and a CAVE InfoService at
once, so that the real CloudVolume and caveclient code can run against it:

- static files under ``root`` (``GET``/``HEAD``), with single-range ``Range``
  requests answered ``206`` (CloudVolume's sharded reads need them; Python's
  ``http.server`` ignores Range), and ``X`` served from ``X.gz`` with
  ``Content-Encoding: gzip`` when only the gzipped file exists (how CloudFiles
  stores fragments);
- graphene routes for datasets written by
  :func:`support.precomputed.write_graphene_layer`:
  ``/segmentation/table/<table>/info`` and
  ``/meshing/api/v1/table/<table>/manifest/<root id>:<lod>``;
- CAVE InfoService routes: ``/info/version`` and
  ``/info/api/v2/datastack/full/<name>``;
- routes added by tests (``add_route``): whole fake services live beside this file
  (``fake_cave.py``: CAVE's materialization, skeleton and L2 cache services);
- a bearer token check on the API routes (401 when missing or wrong);
- a log of every request, so tests can count fetches;
- faults injected by path regex: an HTTP status (503, 500, 404, ...), a slow
  answer, a truncated body, or a connection reset, ``times`` times or forever;
- a fixed ``latency`` per request (a real network's round trip).

Use::

    with FixtureServer(root_dir, token="abc123") as srv:
        srv.add_graphene("test_graph", root_dir / "graphene")
        srv.add_datastack("test_stack", graphene_table="test_graph")
        srv.inject(r"/mesh/.*\\.shard$", "503", times=2)
        ... CloudVolume(f"precomputed://{srv.url}/multires") ...
        assert srv.count(r"\\.shard$") == 3

Unknown API paths answer 404 and are logged (``srv.unknown_paths``), so a new
library version that asks for something else is easy to spot.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import socket
import struct
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, Optional
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

#: Routes that need the bearer token (when the server has one). Static data is
#: public, as in the public buckets behind real graphene datasets.
DEFAULT_AUTH_PATHS = r"^/(info/api|segmentation|meshing|auth)/"

FAULT_KINDS = ("status", "slow", "truncate", "reset")


@dataclass
class Fault:
    """One injected fault. ``times=None`` means every matching request."""

    pattern: re.Pattern
    kind: str
    status: int = 503
    delay: float = 0.0
    times: Optional[int] = 1
    method: Optional[str] = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method and self.method != method:
            return False
        return bool(self.pattern.search(path))


class Gate:
    """Holds requests matching ``pattern`` until ``count`` of them have arrived (then lets them all
    through at once) or ``timeout`` seconds have passed: whether a client had them all in flight
    together, independent of how fast the machine is."""

    def __init__(self, pattern: str, count: int, timeout: float):
        self.pattern = re.compile(pattern)
        self.count = count
        self.timeout = timeout
        self.arrived = 0
        self.most_waiting = 0  # the most requests held at once
        self._waiting = 0
        self._cond = threading.Condition()

    @property
    def opened(self) -> bool:
        """Whether all ``count`` requests were held at the same time."""
        return self.most_waiting >= self.count

    def pass_through(self, path: str) -> None:
        if not self.pattern.search(path):
            return
        with self._cond:
            self.arrived += 1
            self._waiting += 1
            self.most_waiting = max(self.most_waiting, self._waiting)
            if self._waiting >= self.count:
                self._cond.notify_all()
            else:
                self._cond.wait_for(lambda: self.most_waiting >= self.count, timeout=self.timeout)
            self._waiting -= 1


@dataclass(frozen=True)
class RouteRequest:
    """What a route added with ``FixtureServer.add_route`` is given."""

    method: str
    path: str
    query: dict  # parse_qs of the query string: name -> list of values
    body: bytes
    match: re.Match
    headers: dict


@dataclass(frozen=True)
class RequestRecord:
    """What the server saw and did for one request."""

    method: str
    path: str  # URL-decoded, without the query string
    query: str
    range: Optional[str]
    authorized: Optional[bool]  # None: the route needs no token
    status: int
    fault: Optional[str]
    time: float = field(default_factory=time.monotonic)  # when answered (time.monotonic)
    received: Optional[float] = None  # when its request line arrived (time.monotonic)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many keep-alive connections opened at once (a whole manifest's fragments are asked for
    # together); a short listen backlog drops SYNs, and each drop costs the client a 1 s resend.
    request_queue_size = 1024

    def handle_error(self, request, client_address):  # noqa: D401 - stdlib hook
        # Clients that hang up early (CloudFiles' exists() streams a GET and
        # closes it unread) are normal here, not worth a traceback.
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


class FixtureServer:
    """Serve ``root`` on ``127.0.0.1:<free port>`` from a background thread."""

    def __init__(
        self,
        root: str | Path,
        *,
        token: Optional[str] = None,
        auth_paths: str = DEFAULT_AUTH_PATHS,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
    ):
        self.root = Path(root).resolve()
        #: Seconds every request waits before it is answered: a network's round trip (real
        #: object stores and CAVE servers add 20-100 ms), paid concurrently by concurrent requests.
        self.latency = float(latency)
        #: Required bearer token on ``auth_paths``; ``None`` disables the check.
        self.token = token
        self.auth_paths = re.compile(auth_paths)
        self._host = host
        #: The URL clients reach this server by, when a front (support.tls_front) stands before it:
        #: graphene infos and datastacks point there.
        self.public_url: Optional[str] = None
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._gates: list[Gate] = []
        self._records: list[RequestRecord] = []
        self.unknown_paths: list[str] = []
        self._graphene: dict[str, dict] = {}
        self._datastacks: dict[str, dict | Callable[[], dict]] = {}
        self._routes: list[tuple[re.Pattern, Optional[str], Callable]] = []
        # Bind now, so ``url`` is known before ``start()`` (datasets and
        # datastacks embed it).
        handler = type("Handler", (_Handler,), {"fixture": self})
        self._httpd: Optional[_Server] = _Server((host, port), handler)
        self._thread: Optional[threading.Thread] = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> "FixtureServer":
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"FixtureServer:{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()
        self._httpd = None

    def __enter__(self) -> "FixtureServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server stopped")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash), or the front's ``public_url``."""
        return self.public_url or self.backend_url

    @property
    def backend_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # ----------------------------------------------------------------- datasets

    def add_graphene(self, table: str, directory: str | Path) -> str:
        """Serve a graphene dataset written by ``write_graphene_layer``; returns its URL.

        ``directory`` must be under ``root``: its ``data/`` is served as static
        files and becomes the ``data_dir`` of the chunkedgraph ``info``.
        """
        from support.precomputed import GRAPHENE_SERVER_FILE

        directory = Path(directory).resolve()
        description = json.loads((directory / GRAPHENE_SERVER_FILE).read_text())
        data_dir = (directory / description["info"]["data_dir"]).resolve()
        try:
            relative = data_dir.relative_to(self.root)
        except ValueError:
            raise ValueError(f"{data_dir} is not under the served root {self.root}") from None
        with self._lock:
            self._graphene[table] = {"description": description, "data_path": relative.as_posix()}
        return self.graphene_url(table)

    def graphene_url(self, table: str) -> str:
        """The CloudVolume path of a graphene dataset: ``graphene://http://.../segmentation/table/<t>``."""
        return f"graphene://{self.url}/segmentation/table/{table}"

    def add_datastack(self, name: str, *, graphene_table: Optional[str] = None,
                      payload: Optional[dict] = None, **info_kwargs) -> None:
        """Serve a CAVE datastack: ``payload`` as given, or one pointing at ``graphene_table``.

        Extra keyword arguments go to ``cave_datastack_info``.
        """
        if payload is None:
            if graphene_table is None:
                raise ValueError("give graphene_table or payload")
            from support.precomputed import cave_datastack_info

            def payload_factory() -> dict:
                # Built per request: the URL is only known once serving.
                return cave_datastack_info(
                    name, server_url=self.url,
                    segmentation_source=self.graphene_url(graphene_table), **info_kwargs,
                )

            self._datastacks[name] = payload_factory
        else:
            self._datastacks[name] = payload

    def add_route(self, pattern: str, handler: Callable, *, method: Optional[str] = None) -> None:
        """Answer requests whose path matches ``pattern`` (``re.fullmatch``) with
        ``handler(request)``: it gets a :class:`RouteRequest` and returns ``(status, headers,
        body)`` (body bytes, or anything JSON-serialisable). Checked before the built-in
        routes, after faults and the token check; the latest route added wins."""
        with self._lock:
            self._routes.insert(0, (re.compile(pattern), method, handler))

    def remove_route(self, pattern: str) -> None:
        """Stop answering ``pattern`` with a route added by :meth:`add_route` (the server is shared
        by the tests of a session)."""
        with self._lock:
            self._routes = [route for route in self._routes if route[0].pattern != pattern]

    # ------------------------------------------------------------------- faults

    def inject(self, pattern: str, kind: str | int = "503", *, times: Optional[int] = 1,
               delay: float = 2.0, method: Optional[str] = None) -> Fault:
        """Make requests whose path matches ``pattern`` (``re.search``) misbehave.

        ``kind``: an HTTP status (``"503"``, ``500``, ``"404"``, ...), ``"slow"``
        (sleep ``delay`` seconds, then answer normally), ``"truncate"`` (send
        the headers and half the body, then close), or ``"reset"`` (close the
        connection with a TCP RST before answering). Applies to the next
        ``times`` matching requests (``None``: all of them). Earlier faults win.
        """
        if isinstance(kind, int) or str(kind).isdigit():
            fault = Fault(re.compile(pattern), "status", status=int(kind), times=times, method=method)
        elif kind in FAULT_KINDS and kind != "status":
            fault = Fault(re.compile(pattern), kind, delay=delay, times=times, method=method)
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._faults.append(fault)
        return fault

    def gate(self, pattern: str, count: int, timeout: float = 10.0) -> Gate:
        """Hold requests whose path matches ``pattern`` until ``count`` are held together (or
        ``timeout`` passes); ``gate.opened`` then says whether they were. Cleared with the faults."""
        gate = Gate(pattern, count, timeout)
        with self._lock:
            self._gates.append(gate)
        return gate

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._gates.clear()

    def _take_fault(self, method: str, path: str) -> Optional[Fault]:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    # ----------------------------------------------------------------- requests

    def requests(self, pattern: Optional[str] = None, method: Optional[str] = None) -> list[RequestRecord]:
        """Requests seen so far (oldest first) whose path matches ``pattern``."""
        regex = re.compile(pattern) if pattern else None
        with self._lock:
            records = list(self._records)
        return [
            r for r in records
            if (regex is None or regex.search(r.path)) and (method is None or r.method == method)
        ]

    def count(self, pattern: Optional[str] = None, method: Optional[str] = None) -> int:
        return len(self.requests(pattern, method))

    def busiest(self, window: float = 1.0, pattern: Optional[str] = None) -> int:
        """The most requests (matching ``pattern``) that arrived within any ``window`` seconds."""
        return busiest_window([r.received for r in self.requests(pattern)], window)

    def reset_requests(self) -> None:
        with self._lock:
            self._records.clear()
            self.unknown_paths.clear()

    @contextmanager
    def fresh(self) -> Iterator["FixtureServer"]:
        """This server with no faults, an empty request log and no added latency, for one
        test (a module- or session-scoped server shared by many): ``with srv.fresh(): yield srv``."""
        self.clear_faults()
        self.reset_requests()
        try:
            yield self
        finally:
            self.clear_faults()
            self.latency = 0.0

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def _unknown(self, method: str, path: str) -> None:
        log.warning("FixtureServer: unknown API path %s %s", method, path)
        with self._lock:
            self.unknown_paths.append(f"{method} {path}")


# --------------------------------------------------------------------------
# request handler
# --------------------------------------------------------------------------

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_GRAPHENE_INFO = re.compile(r"^/segmentation/(?:api/v1/)?table/([^/]+)/info$")
_MANIFEST = re.compile(r"^/meshing/api/v1/table/([^/]+)/manifest/(\d+):(\d+)$")
_DATASTACK = re.compile(r"^/info/api/v2/datastack/full/([^/]+)$")


class _Handler(BaseHTTPRequestHandler):
    fixture: FixtureServer  # set on the subclass made by FixtureServer.start
    protocol_version = "HTTP/1.1"  # keep-alive, like real object stores
    # Without this every small response waits for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server_version = "FixtureServer/1"

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        log.debug("%s - %s", self.address_string(), format % args)

    # Per-request state, reset in _dispatch.
    _status = 0
    _fault_name: Optional[str] = None
    _authorized: Optional[bool] = None

    def do_GET(self):
        self._dispatch(head=False)

    def do_HEAD(self):
        self._dispatch(head=True)

    def do_POST(self):
        # caveclient/CloudVolume use POST for some chunkedgraph calls; only
        # the manifest route (GET or POST) is implemented.
        self._dispatch(head=False)

    # ----------------------------------------------------------------- dispatch

    def _dispatch(self, head: bool) -> None:
        fx = self.fixture
        self._received = time.monotonic()
        split = urlsplit(self.path)
        path = unquote(split.path)
        self._path, self._query = path, split.query
        self._status, self._fault_name, self._authorized = 0, None, None
        self._truncate = self._recorded = False
        # Requests with a body (CloudVolume sends JSON on the manifest GET)
        # must be drained, or the next keep-alive request would read it.
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if fx.latency > 0:
            time.sleep(fx.latency)
        with fx._lock:
            gates = list(fx._gates)
        for gate in gates:
            gate.pass_through(path)
        try:
            fault = fx._take_fault(self.command, path)
            if fault is not None:
                self._fault_name = fault.kind if fault.kind != "status" else str(fault.status)
                if fault.kind == "reset":
                    self._reset()
                    return
                if fault.kind == "status":
                    self._send_text(fault.status, f"injected {fault.status}\n", head)
                    return
                if fault.kind == "slow":
                    time.sleep(fault.delay)
                elif fault.kind == "truncate":
                    self._truncate = True
            self._route(path, split.query, body, head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._record()

    def _record(self) -> None:
        """Log this request once, *before* the client can see the answer.

        Recording after sending would race the test: the client may already
        be counting requests while this thread has not logged its own yet.
        """
        if self._recorded:
            return
        self._recorded = True
        self.fixture._record(RequestRecord(
            method=self.command, path=self._path, query=self._query,
            range=self.headers.get("Range"), authorized=self._authorized,
            status=self._status, fault=self._fault_name, received=self._received,
        ))

    def _route(self, path: str, query: str, body: bytes, head: bool) -> None:
        fx = self.fixture
        if fx.auth_paths.search(path):
            self._authorized = self._check_token()
            if not self._authorized:
                self._send_json(HTTPStatus.UNAUTHORIZED, {"error": "missing or invalid token"}, head)
                return

        for pattern, method, handler in list(fx._routes):
            match = pattern.fullmatch(path)
            if match and (method is None or method == self.command):
                status, headers, payload = handler(RouteRequest(self.command, path, parse_qs(query), body, match,
                                                                dict(self.headers)))
                if not isinstance(payload, (bytes, bytearray)):
                    payload = json.dumps(payload).encode()
                    headers = {"Content-Type": "application/json", **(headers or {})}
                self._send(int(status), bytes(payload), dict(headers or {}), head)
                return
        if path == "/info/version":
            self._send_json(200, "4.4.0", head)
            return
        m = _DATASTACK.match(path)
        if m:
            entry = fx._datastacks.get(m.group(1))
            if entry is None:
                self._send_json(404, {"message": f"datastack {m.group(1)} not found"}, head)
            else:
                self._send_json(200, entry() if callable(entry) else entry, head)
            return
        m = _GRAPHENE_INFO.match(path)
        if m and m.group(1) in fx._graphene:
            dataset = fx._graphene[m.group(1)]
            info = dict(dataset["description"]["info"])
            info["data_dir"] = f"{fx.url}/{dataset['data_path']}"
            self._send_json(200, info, head)
            return
        m = _MANIFEST.match(path)
        if m and m.group(1) in fx._graphene:
            self._send_manifest(m.group(1), m.group(2), query, head)
            return
        if fx.auth_paths.search(path) or path.startswith("/info/"):
            fx._unknown(self.command, path)
            self._send_json(404, {"error": f"no route for {path}"}, head)
            return
        if self.command == "POST":
            self._send_text(405, "static files are read-only\n", head)
            return
        self._send_file(path, head)

    def _check_token(self) -> bool:
        expected = self.fixture.token
        if expected is None:
            return True
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[len("Bearer "):].strip() == expected:
            return True
        # caveclient also sends the token as a cookie.
        for cookie in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = cookie.strip().partition("=")
            if name == "middle_auth_token" and value == expected:
                return True
        return False

    # --------------------------------------------------------------- graphene

    def _send_manifest(self, table: str, root_id: str, query: str, head: bool) -> None:
        params = parse_qs(query)
        manifests = self.fixture._graphene[table]["description"]["manifests"]
        # An unknown root id gets an empty fragment list (no error status).
        entry = manifests.get(str(int(root_id)), {"fragments": [], "seg_ids": []})
        payload = {"fragments": list(entry["fragments"])}
        if params.get("return_seg_ids", ["0"])[0] not in ("0", "false", "False"):
            payload["seg_ids"] = list(entry["seg_ids"])
        self._send_json(200, payload, head)

    # ------------------------------------------------------------------ static

    def _send_file(self, path: str, head: bool) -> None:
        target = (self.fixture.root / path.lstrip("/")).resolve()
        if target != self.fixture.root and self.fixture.root not in target.parents:
            self._send_text(403, "outside the served root\n", head)
            return
        encoding = None
        if not target.is_file():
            gz = target.with_name(target.name + ".gz")
            if gz.is_file():
                target, encoding = gz, "gzip"
            else:
                self._send_text(404, "not found\n", head)
                return
        data = target.read_bytes()
        headers = {
            "Content-Type": "application/octet-stream",
            "Last-Modified": email.utils.formatdate(target.stat().st_mtime, usegmt=True),
            "Accept-Ranges": "bytes",
        }
        if encoding:
            headers["Content-Encoding"] = encoding

        range_header = self.headers.get("Range")
        if range_header:
            span = _parse_range(range_header, len(data))
            if span is None:
                headers["Content-Range"] = f"bytes */{len(data)}"
                self._send(416, b"", headers, head)
                return
            start, end = span
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
            self._send(206, data[start:end], headers, head)
            return
        self._send(200, data, headers, head)

    # ---------------------------------------------------------------- writing

    def _send_json(self, status: int, payload, head: bool) -> None:
        body = json.dumps(payload).encode()
        self._send(int(status), body, {"Content-Type": "application/json"}, head)

    def _send_text(self, status: int, text: str, head: bool) -> None:
        self._send(int(status), text.encode(), {"Content-Type": "text/plain"}, head)

    def _send(self, status: int, body: bytes, headers: dict, head: bool) -> None:
        self._status = status
        self._record()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self._truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        if head:
            return
        if self._truncate:
            # Promise the full length, deliver half, hang up: the client sees
            # a short read (urllib3: IncompleteRead / ProtocolError).
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0, then close)."""
        self._status = 0
        self._record()
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def finish(self):
        # After a reset the socket is gone; flushing it would raise.
        try:
            super().finish()
        except (OSError, ValueError):
            pass


def busiest_window(stamps, window: float = 1.0) -> int:
    """The largest number of ``stamps`` (seconds) that fall within ``window`` of one another:
    the count in the busiest interval ``[t, t + window]`` over all t (a sliding window)."""
    ordered = sorted(stamps)
    best = first = 0
    for last, stamp in enumerate(ordered):
        while stamp - ordered[first] > window:
            first += 1
        best = max(best, last - first + 1)
    return best


def _parse_range(header: str, size: int) -> Optional[tuple[int, int]]:
    """``(start, end_exclusive)`` for a single ``bytes=`` range, or None if unsatisfiable."""
    m = _RANGE.match(header.strip())
    if not m:
        return None
    first, last = m.groups()
    if first == "":
        if last == "":
            return None
        length = int(last)  # suffix range: the last N bytes
        return (max(size - length, 0), size) if length > 0 and size > 0 else None
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size or end <= start:
        return None
    return start, end
