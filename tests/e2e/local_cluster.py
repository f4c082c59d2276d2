"""A local Kubernetes with gafka, without Docker: ``PYTHONPATH=tests python -m e2e.local_cluster [DIR]``.

Starts what the end-to-end fixture starts (etcd, kube-apiserver, kube-controller-manager, the gafka CRDs, the
test node agent and the operator), prints the kubeconfig and waits for Ctrl-C. Use it to try the operator with
kubectl, or to run the end-to-end tests the way they run against kind, through the kubeconfig only:

    GAFKA_KUBECONFIG=DIR/kube/kubeconfig python -m pytest tests/e2e

Namespaces need the label ``e2e.gafka.dev/node-agent=true`` for the agent to run their pods, and a name
matching ``e2e-*`` for the operator to watch them (the tests' namespaces have both).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

from k8s.controlplane import ControlPlane, Kube, ensure_tools, new_api_client

from .node_agent import network
from .platform import Platform


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local_cluster", description=__doc__)
    parser.add_argument("dir", nargs="?", type=Path, help="working directory (default: a new temporary one)")
    args = parser.parse_args(argv)
    root: Path = args.dir or Path(tempfile.mkdtemp(prefix="gafka-local-cluster-"))
    root.mkdir(parents=True, exist_ok=True)
    unavailable = network.check()
    if unavailable is not None:
        parser.exit(2, f"local_cluster: {unavailable}\n")
    tools = ensure_tools(root / "k8s-tools-build.log", announce=print)
    plane = ControlPlane(tools, root / "kube").start()
    kube = Kube(
        kubeconfig=plane.kubeconfig,
        server=plane.server,
        api_client=new_api_client(plane.kubeconfig),
        kubectl_path=str(tools.kubectl),
        control_plane=plane,
        env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
    )
    platform = None
    try:
        platform = Platform.start_local(kube, root)
        print(f"kubeconfig: {plane.kubeconfig}\nlogs: {root} (operator, node-agent.log, pods/, kube/logs/)")
        print("Ctrl-C to stop")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(1.0):
            platform.check()
    except subprocess.CalledProcessError as error:
        parser.exit(1, f"local_cluster: {error}\n{error.stderr}\n")
    finally:
        if platform is not None:
            platform.stop()
        plane.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
