"""``python -m e2e.node_agent --kubeconfig K --root DIR`` (with ``tests/`` on PYTHONPATH): run the agent until
SIGTERM or SIGINT, then stop every pod's processes and exit 0."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from gafka_operator.kube import KubeApi, new_api_client

from .agent import NodeAgent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="node_agent", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--root", required=True, type=Path, help="pod directories and persistent volumes")
    parser.add_argument("--zones", default="a,b,c", help="one node per zone: e2e-node-<zone>")
    parser.add_argument(
        "--namespace-selector",
        default="e2e.gafka.dev/node-agent=true",
        help="only pods and claims in namespaces with these labels (k=v,...)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    args.root.mkdir(parents=True, exist_ok=True)
    agent = NodeAgent(
        KubeApi(new_api_client(args.kubeconfig)), args.root, args.zones.split(","), args.namespace_selector
    )
    agent.run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
