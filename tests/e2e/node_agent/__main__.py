"""``python -m e2e.node_agent --kubeconfig K --root DIR`` (with ``tests/`` on PYTHONPATH): run the agent until
SIGTERM or SIGINT, then stop every pod's processes and exit 0."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from gafka_operator.kube import KubeApi, new_api_client

from . import network
from .agent import METRICS_PORT, NodeAgent


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
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="do not serve metrics.k8s.io (what HorizontalPodAutoscalers read) on <pod network>.250.1",
    )
    parser.add_argument("--metrics-port", type=int, default=METRICS_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    args.root.mkdir(parents=True, exist_ok=True)
    pod_network, claim = network.claim_network()  # held (flock) until this process exits
    logging.getLogger("node_agent").info("event=pod_network_claimed network=%s.0.0/16", pod_network)
    agent = NodeAgent(
        KubeApi(new_api_client(args.kubeconfig)),
        args.root,
        args.zones.split(","),
        args.namespace_selector,
        pod_network=pod_network,
        metrics=not args.no_metrics,
        metrics_port=args.metrics_port,
    )
    try:
        agent.run(stop)
    finally:
        claim.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
