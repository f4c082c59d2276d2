"""Prometheus and promtool, built from their Go module by scripts/prometheus-tools (cached in ~/.cache/gafka)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from replication.conftest import cluster_factory

__all__ = ["cluster_factory", "prometheus_bin"]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "gafka"
RULES = CHART / "rules" / "gafka.rules.yaml"
DASHBOARDS = CHART / "dashboards"


def _find(name: str) -> str | None:
    cache = Path(os.environ.get("GAFKA_CACHE") or Path.home() / ".cache" / "gafka")
    for candidate in sorted(cache.glob(f"prometheus/*/bin/{name}"), reverse=True):
        if (candidate.parent / f".{name}.stamp").exists():
            return str(candidate)
    return shutil.which(name)


@pytest.fixture(scope="session")
def prometheus_bin() -> dict[str, str]:
    found = {name: _find(name) for name in ("prometheus", "promtool")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise AssertionError(f"{', '.join(missing)} not built: run scripts/prometheus-tools (scripts/test does)")
    return {name: str(path) for name, path in found.items()}
