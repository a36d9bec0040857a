"""Serve a large graphene fixture layer (tests/support/large.py) on 127.0.0.1 in a process of its
own, with a fixed latency per request, for whole-process comparisons (farm-bench): the server's
Python work then does not share the measured process's interpreter.

    python benchmarks/serve_graphene.py --faces 1000000 --neuron 1 2 --scale 0.6 --latency 0.05
    python benchmarks/serve_graphene.py ... --tls            # HTTPS, HTTP/2 and HTTP/1.1 offered (as GCS)
    python benchmarks/serve_graphene.py ... --tls --http1    # HTTPS, HTTP/1.1 only

Prints one JSON line (url, root ids, fragments; with --tls also "ca", the certificate file a client
trusts: SSL_CERT_FILE for mesh-export, REQUESTS_CA_BUNDLE for CloudVolume), then serves until killed.
With --tls the fixture server stands behind tests/support/tls_front.py, which forwards each HTTP/2
stream to it (and relays HTTP/1.1 connections): the server's own CPU per request is higher than a
real object store's, and it shares this machine's cores with the client.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.datasets import TOKEN  # noqa: E402
from support.large import build_large_layers  # noqa: E402
from support.server import FixtureServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=int, default=9_000_000)
    parser.add_argument("--neuron", type=int, nargs="+", default=[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", action="store_true", help="serve HTTPS (a throwaway CA, HTTP/2 offered)")
    parser.add_argument("--http1", action="store_true", help="with --tls: offer only HTTP/1.1 in ALPN")
    args = parser.parse_args()
    layers = build_large_layers(target_faces=args.faces, neuron_index=tuple(args.neuron), scale=args.scale)
    server = FixtureServer(layers.root, token=TOKEN, latency=args.latency, port=0 if args.tls else args.port)
    server.add_graphene(layers.graphene_table, layers.graphene_dir)
    with server, contextlib.ExitStack() as stack:
        described = {}
        if args.tls:
            from support.tls_front import TLSFront, make_certificates

            certs = make_certificates(stack.enter_context(tempfile.TemporaryDirectory(prefix="serve-graphene-tls-")))
            stack.enter_context(TLSFront(server, certs, protocols=("http/1.1",) if args.http1 else ("h2", "http/1.1"),
                                         port=args.port))
            described["ca"] = str(certs.ca)
        print(json.dumps({"url": server.graphene_url(layers.graphene_table), "token": TOKEN,
                          "root_ids": [str(r) for r in layers.root_ids], "fragments": layers.fragments, **described}),
              flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
