"""HTTPS before a FixtureServer, as a client of Google Cloud Storage meets it: TLS on 127.0.0.1 with
HTTP/2 offered in ALPN (or only HTTP/1.1), and a log of every connection it accepted.

The FixtureServer behind stays the one truth (routes, faults, latency, request log): each HTTP/2
stream is forwarded to it as an HTTP/1.1 request on a backend connection of its own (many streams
in flight = many backend requests in flight, so its latency is paid concurrently), and an
HTTP/1.1 connection is relayed byte for byte to a backend connection. What only HTTP/2 has is
done here: a backend connection reset before an answer becomes a RST_STREAM of that stream, a
body cut short becomes the bytes that came and a RST_STREAM, and ``drop(pattern)`` aborts the
whole TCP connection (every stream on it) with a RST when a matching request arrives.

The certificate comes from :func:`make_certificates` (a CA and a leaf for 127.0.0.1, made per
session); a client trusts it through ``SSL_CERT_FILE`` (httpx, urllib3/OpenSSL) or
``REQUESTS_CA_BUNDLE`` (requests, hence CloudVolume)::

    certs = make_certificates(tmp_dir)
    with FixtureServer(root) as backend, TLSFront(backend, certs) as front:
        url = front.url  # https://127.0.0.1:PORT; backend.url is the same while the front runs
        front.connections  # [Connection(number, protocol "h2" | "http/1.1", streams), ...]
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import socket
import ssl
import struct
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from .server import FixtureServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass(frozen=True)
class CertFiles:
    ca: Path  # what a client trusts (SSL_CERT_FILE)
    cert: Path  # the server's certificate, for 127.0.0.1 and localhost
    key: Path


def make_certificates(directory: str | Path, name: str = "fixture") -> CertFiles:
    """A throwaway CA and a server certificate it signed (EC P-256: made in milliseconds)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mesh-export test CA {name}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = CertFiles(directory / f"{name}-ca.pem", directory / f"{name}-cert.pem", directory / f"{name}-key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files


@dataclass
class Connection:
    """One TCP+TLS connection the front accepted."""

    number: int
    protocol: str  # the ALPN protocol chosen: "h2" or "http/1.1"
    streams: int = 0  # HTTP/2 requests it carried (0 for HTTP/1.1: see the backend's log)
    most_streams: int = 0  # the most HTTP/2 requests it carried at once
    _open: int = field(default=0, repr=False)


@dataclass
class _Drop:
    pattern: re.Pattern
    times: Optional[int]
    hits: int = 0


class TLSFront:
    """Serve ``backend`` over TLS on 127.0.0.1, speaking ``protocols`` (ALPN order)."""

    def __init__(self, backend: FixtureServer, certs: CertFiles, *, protocols=("h2", "http/1.1"),
                 max_streams: int = 100, port: int = 0):
        import h2.connection  # noqa: F401  (fail at construction, not in the serving thread)

        self.backend = backend
        self.protocols = tuple(protocols)
        #: SETTINGS_MAX_CONCURRENT_STREAMS (Google's front ends advertise 100).
        self.max_streams = max_streams
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(certs.cert, certs.key)
        self._context.set_alpn_protocols(list(self.protocols))
        self._port = port
        self._lock = threading.Lock()
        self.connections: list[Connection] = []
        self._drops: list[_Drop] = []
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server = None
        self._thread: Optional[threading.Thread] = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> "TLSFront":
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="TLSFront", daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        self._port = self._server.sockets[0].getsockname()[1]
        self.backend.public_url = self.url
        return self

    async def _listen(self):
        return await asyncio.start_server(self._accept, "127.0.0.1", self._port, ssl=self._context, backlog=1024)

    def stop(self) -> None:
        if self._loop is None:
            return
        self.backend.public_url = None

        async def close():
            self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=5) if tasks else None

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> "TLSFront":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._port}"

    # ------------------------------------------------------------- test hooks

    def drop(self, pattern: str, times: Optional[int] = 1) -> None:
        """Abort the whole TCP connection (a RST; every stream on it dies) when an HTTP/2 request
        whose path matches ``pattern`` arrives, ``times`` times (None: always)."""
        with self._lock:
            self._drops.append(_Drop(re.compile(pattern), times))

    @contextmanager
    def fresh(self) -> Iterator["TLSFront"]:
        """No faults, an empty connection log (and the backend's ``fresh()``) for one test."""
        with self.backend.fresh():
            with self._lock:
                self._drops.clear()
                self.connections.clear()
            try:
                yield self
            finally:
                with self._lock:
                    self._drops.clear()

    def _take_drop(self, path: str) -> bool:
        with self._lock:
            for drop in self._drops:
                if (drop.times is None or drop.hits < drop.times) and drop.pattern.search(path):
                    drop.hits += 1
                    return True
        return False

    # ------------------------------------------------------------- connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        protocol = (ssl_object.selected_alpn_protocol() if ssl_object else None) or "http/1.1"
        with self._lock:
            record = Connection(len(self.connections), protocol)
            self.connections.append(record)
        try:
            if protocol == "h2":
                await _HTTP2Connection(self, record, reader, writer).serve()
            else:
                await self._relay(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # A client's reset, or stop(): end quietly (a CancelledError let out is printed by asyncio).
            _abort(writer)
        finally:
            if not writer.is_closing():
                writer.close()

    async def _relay(self, reader, writer) -> None:
        """HTTP/1.1: the client's bytes to a backend connection of its own and back; a backend reset
        resets the client's connection, a backend close closes it."""
        back_reader, back_writer = await asyncio.open_connection(*self._backend_address())

        async def pump(source, sink, sink_is_client: bool):
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except ConnectionResetError:
                if sink_is_client:
                    _abort(sink)
                    return
            except (ConnectionError, ssl.SSLError):
                pass
            if not sink.is_closing():
                sink.close()

        await asyncio.gather(pump(reader, back_writer, False), pump(back_reader, writer, True))

    def _backend_address(self) -> tuple[str, int]:
        return "127.0.0.1", self.backend.port


class _HTTP2Connection:
    """One HTTP/2 connection: h2's state machine, a task per stream."""

    def __init__(self, front: TLSFront, record: Connection, reader, writer):
        import h2.config
        import h2.connection
        import h2.settings

        self.front, self.record, self.reader, self.writer = front, record, reader, writer
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: front.max_streams})
        self.window = asyncio.Condition()
        self.requests: dict[int, tuple[dict, bytearray]] = {}
        self.tasks: dict[int, asyncio.Task] = {}
        self.idle_backends: list[tuple] = []
        self.closed = False

    async def serve(self) -> None:
        import h2.events
        import h2.exceptions

        self.h2.initiate_connection()
        self.flush()
        try:
            while not self.closed and (data := await self.reader.read(65536)):
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError:
                    break
                for event in events:
                    if isinstance(event, h2.events.RequestReceived):
                        self.requests[event.stream_id] = (dict(event.headers), bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        self.requests[event.stream_id][1].extend(event.data)
                        self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = self.requests.pop(event.stream_id)
                        self.tasks[event.stream_id] = asyncio.create_task(
                            self.answer(event.stream_id, headers, bytes(body)))
                    elif isinstance(event, h2.events.StreamReset):
                        task = self.tasks.pop(event.stream_id, None)
                        if task:
                            task.cancel()
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        self.closed = True
                    if isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
                        async with self.window:
                            self.window.notify_all()
                self.flush()
        finally:
            self.closed = True
            for task in list(self.tasks.values()):
                task.cancel()
            async with self.window:
                self.window.notify_all()
            for _, back_writer in self.idle_backends:
                back_writer.close()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def answer(self, stream_id: int, headers: dict, body: bytes) -> None:
        import h2.errors
        import h2.exceptions

        record = self.record
        record.streams += 1
        record._open += 1
        record.most_streams = max(record.most_streams, record._open)
        try:
            if self.front._take_drop(headers[":path"]):
                self.closed = True
                _abort(self.writer)
                return
            answer = await self.forward(headers, body)
            if self.closed:
                return
            if answer is None:  # the backend reset the request before answering
                self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                self.flush()
                return
            status, response_headers, content, complete = answer
            self.h2.send_headers(stream_id, [(":status", str(status)), *response_headers])
            await self.send_body(stream_id, content)
            if complete:
                self.h2.end_stream(stream_id)
            else:  # the backend hung up mid-body
                self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            self.flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, ConnectionError):
            pass
        finally:
            record._open -= 1
            self.tasks.pop(stream_id, None)

    async def send_body(self, stream_id: int, content: bytes) -> None:
        sent = 0
        while sent < len(content):
            async with self.window:
                await self.window.wait_for(lambda: self.closed or self.h2.local_flow_control_window(stream_id) > 0)
            if self.closed:
                raise ConnectionError("connection closed")
            size = min(self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size,
                       len(content) - sent)
            self.h2.send_data(stream_id, content[sent:sent + size])
            sent += size
            self.flush()
            await self.writer.drain()

    async def forward(self, headers: dict, body: bytes):
        """The request over HTTP/1.1 to the backend: (status, headers, body, complete), or None
        when the backend reset the connection before answering."""
        if self.idle_backends:
            back_reader, back_writer = self.idle_backends.pop()
        else:
            try:
                back_reader, back_writer = await asyncio.open_connection(*self.front._backend_address())
            except OSError:
                return None
        lines = [f"{headers[':method']} {headers[':path']} HTTP/1.1", f"Host: {headers.get(':authority', '')}"]
        lines += [f"{name}: {value}" for name, value in headers.items()
                  if not name.startswith(":") and name not in ("host", "content-length", *_HOP_BY_HOP)]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        try:
            back_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await back_writer.drain()
            status_line = await back_reader.readline()
            if not status_line:
                raise ConnectionResetError
            status = int(status_line.split()[1])
            response_headers, length, close = [], 0, False
            while (line := await back_reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                name, value = name.strip().lower(), value.strip()
                if name == "content-length":
                    length = int(value)
                if name == "connection" and value.lower() == "close":
                    close = True
                if name not in _HOP_BY_HOP:
                    response_headers.append((name, value))
        except ConnectionError:
            back_writer.close()
            return None
        try:
            content, complete = await back_reader.readexactly(length), True
        except asyncio.IncompleteReadError as short:
            content, complete, close = short.partial, False, True
        except ConnectionError:
            content, complete, close = b"", False, True
        if close:
            back_writer.close()
        else:
            self.idle_backends.append((back_reader, back_writer))
        return status, response_headers, content, complete


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close a connection with a TCP RST (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()
