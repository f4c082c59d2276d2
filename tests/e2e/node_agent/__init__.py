"""A test node agent: the kubelet (and scheduler, and volume provisioner) of the local end-to-end tests.

This machine has a real API server and controller-manager but no container runtime, so the agent plays the
node side of Kubernetes with local processes:

- registers Nodes (one per simulated zone, labelled as kind-config.yaml labels kind's workers);
- binds unscheduled pods to a node (nodeSelector and required node affinity honoured, spread like the
  pods' preferred anti-affinity asks) through the ``pods/binding`` subresource, as kube-scheduler does;
- provisions a hostPath PersistentVolume (a directory under the agent's root) for each pending claim, which
  the controller-manager's binder then binds: a recreated pod gets the same directory back and recovers its log;
- runs each bound pod's init containers and containers as local processes with the environment a kubelet would
  give them (:mod:`gafka_operator.podenv`), on a pod IP of its own (``127.1.<node>.<n>``), with the volumes
  materialised as directories and the container paths rewritten to them (:mod:`.volumes`);
- runs the probes, restarts exited or unhealthy containers, reports pod status (phase, IPs, conditions,
  container statuses);
- on a graceful delete sends SIGTERM, waits the grace period, SIGKILLs, then removes the pod; a pod that
  vanishes (force delete) has its processes killed at once.
- serves the resource metrics API ``metrics.k8s.io/v1beta1`` of its pods (CPU and memory of each container's
  process tree, from ``/proc``) and registers it as an APIService, as metrics-server would: what a
  HorizontalPodAutoscaler reads (:mod:`.metrics_api`).

It handles only pods in namespaces matching ``--namespace-selector``, so it never touches the pods of tests that
play kubelet by hand. Deviations from a kubelet, for test speed: probes run at most every second, container
restarts back off from 1 s to 10 s, and the image is ignored (commands run from this checkout's environment).
"""
