"""Serve a large graphene fixture layer (tests/support/large.py) on 127.0.0.1 in a process of its
own, with a fixed latency per request, for whole-process comparisons (farm-bench): the server's
Python work then does not share the measured process's interpreter.

    python benchmarks/serve_graphene.py --faces 1000000 --neuron 1 2 --scale 0.6 --latency 0.05

Prints one JSON line (url, root ids, fragments), then serves until killed.
"""

from __future__ import annotations

import argparse
import json
import sys
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
    args = parser.parse_args()
    layers = build_large_layers(target_faces=args.faces, neuron_index=tuple(args.neuron), scale=args.scale)
    server = FixtureServer(layers.root, token=TOKEN, latency=args.latency, port=args.port)
    server.add_graphene(layers.graphene_table, layers.graphene_dir)
    with server:
        print(json.dumps({"url": server.graphene_url(layers.graphene_table), "token": TOKEN,
                          "root_ids": [str(r) for r in layers.root_ids], "fragments": layers.fragments}),
              flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
