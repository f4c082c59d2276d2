"""broker/Dockerfile and operator/Dockerfile, read since nothing here can build them (no Docker engine).

Checked: slim Python 3.11 base, multi-stage (the runtime stage gets wheels, not sources), a non-root numeric USER
(Kubernetes' runAsNonRoot can only verify numeric ones), a HEALTHCHECK, no ADD from URLs, what is EXPOSEd, and
that .dockerignore keeps everything the build copies in the build context.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int


def parse(path: Path) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped; ``stage`` counts FROMs from 0."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
    assert not pending, f"{path}: dangling line continuation"
    return instructions


def _args_default(instructions: list[Instruction], name: str) -> str | None:
    for ins in instructions:
        if ins.keyword == "ARG" and ins.args.startswith(f"{name}="):
            return ins.args.split("=", 1)[1]
    return None


def _resolve(text: str, instructions: list[Instruction]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: _args_default(instructions, m.group(1)) or m.group(0), text)


IMAGES = {
    "broker": {"expose": {"9092"}, "healthz": "/healthz", "volume": True},
    "operator": {"expose": {"9093", "8080"}, "healthz": "http://127.0.0.1:8080/healthz", "volume": False},
}


@pytest.fixture(params=sorted(IMAGES))
def image(request: pytest.FixtureRequest) -> tuple[str, list[Instruction]]:
    name: str = request.param
    return name, parse(ROOT / name / "Dockerfile")


def test_slim_python_311_multi_stage(image: tuple[str, list[Instruction]]) -> None:
    _, instructions = image
    froms = [_resolve(i.args, instructions) for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: build the wheels in one stage, install them in another"
    for base in froms:
        assert base.split()[0] in ("python:3.11-slim", "python:3.11-slim-bookworm"), base
    assert froms[0].endswith("AS build")
    final = max(i.stage for i in instructions)
    copies_into_final = [i for i in instructions if i.stage == final and i.keyword in ("COPY", "ADD")]
    assert not copies_into_final, "the runtime stage installs wheels from the build stage, it copies no sources"
    installs = [i.args for i in instructions if i.stage == final and i.keyword == "RUN" and "pip install" in i.args]
    assert installs and all("--no-index" in args and "from=build" in args for args in installs)


def test_runs_as_a_numeric_non_root_user(image: tuple[str, list[Instruction]]) -> None:
    _, instructions = image
    final = max(i.stage for i in instructions)
    users = [i.args for i in instructions if i.keyword == "USER" and i.stage == final]
    assert users, "no USER in the runtime stage: it would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER {users[-1]}: use a numeric, non-zero uid"
    last_user_index = max(n for n, i in enumerate(instructions) if i.keyword == "USER")
    later_runs = [i for i in instructions[last_user_index:] if i.keyword == "RUN"]
    assert not later_runs, "nothing runs after dropping privileges that would need root"


def test_healthcheck(image: tuple[str, list[Instruction]]) -> None:
    name, instructions = image
    [check] = [i.args for i in instructions if i.keyword == "HEALTHCHECK"]
    assert "CMD" in check and "--interval" in check and "--timeout" in check
    assert IMAGES[name]["healthz"] in check
    assert "urllib.request" in check, "python's standard library: slim images have no curl"


def test_no_remote_add_and_exposed_ports(image: tuple[str, list[Instruction]]) -> None:
    name, instructions = image
    for ins in instructions:
        if ins.keyword == "ADD":
            assert not re.search(r"(https?|git)://|git@", ins.args), f"ADD from a URL: {ins.args}"
    exposed = {port for i in instructions if i.keyword == "EXPOSE" for port in i.args.split()}
    assert exposed == IMAGES[name]["expose"]
    volumes = [i.args for i in instructions if i.keyword == "VOLUME"]
    assert bool(volumes) == IMAGES[name]["volume"]
    if volumes:
        assert "/var/lib/gafka" in volumes[0]


def test_entrypoints() -> None:
    broker = parse(ROOT / "broker" / "Dockerfile")
    assert [i.args for i in broker if i.keyword == "ENTRYPOINT"] == ['["gafka"]']
    assert [i.args for i in broker if i.keyword == "CMD"] == ['["broker"]']
    env = " ".join(i.args for i in broker if i.keyword == "ENV")
    assert "GAFKA_DATA_DIR=/var/lib/gafka/data" in env
    operator = parse(ROOT / "operator" / "Dockerfile")
    cmd = " ".join(i.args for i in operator if i.keyword in ("ENTRYPOINT", "CMD"))
    assert '"kopf", "run"' in cmd and "--liveness=http://0.0.0.0:8080/healthz" in cmd


def _dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes; ``**`` matches any number of folders."""
    excluded = False
    parts = path.split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        regex = fnmatch.translate(body).replace(".*.*", ".*")
        if body.startswith("**/"):
            regex = "(.*/)?" + fnmatch.translate(body[3:])
        # a pattern matching a folder matches everything below it
        if any(re.fullmatch(regex, "/".join(parts[: n + 1])) for n in range(len(parts))):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_the_build_inputs() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied: set[str] = set()
    for name in IMAGES:
        for ins in parse(ROOT / name / "Dockerfile"):
            if ins.keyword == "COPY" and "--from" not in ins.args:
                copied.update(shlex.split(ins.args)[:-1])
    assert copied == {"requirements.lock", "pyproject.toml", "setup.py", "README.md", "client", "broker", "operator"}
    for source in copied:
        assert not _dockerignore_excludes(source, patterns), f".dockerignore drops {source}"
    for package in ("client/gafka/__init__.py", "broker/gafka_broker/app.py", "operator/gafka_operator/manifests.py"):
        assert not _dockerignore_excludes(package, patterns), package
    for junk in (
        ".git/HEAD",
        "tests/conftest.py",
        "broker/gafka_broker/__pycache__/app.cpython-311.pyc",
        "gafka.egg-info/PKG-INFO",
        "client/gafka/protocol/_crecords.cpython-311-x86_64-linux-gnu.so",
    ):
        assert _dockerignore_excludes(junk, patterns), junk


def test_images_install_their_extra(image: tuple[str, list[Instruction]]) -> None:
    """The bare package is the SDK and CLI only: each image installs the extra that brings its server."""
    name, instructions = image
    runs = " ".join(i.args for i in instructions if i.keyword == "RUN")
    assert f"'gafka[{name}]'" in runs, runs
    # the build stage wheels exactly the locked dependencies (of every extra), then gafka alone
    assert "--require-hashes -r requirements.lock" in runs and "--no-deps ." in runs, runs
    locked = (ROOT / "requirements.lock").read_text()
    assert all(f"\n{package}==" in locked for package in ("kio", "starlette", "kopf", "kubernetes")), "stale lock"
