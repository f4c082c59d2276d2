"""The docs as a newcomer uses them: every ``gafka`` command line in README.md and docs/ parses against the
real CLI, and every field an example answer in docs/api.md shows is in the real answer of the commands
just above it, run with bash and curl against a real broker."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import typer

from gafka.cli.main import _load_plugins, app

try:  # typer vendors click in newer releases
    from typer._click import Group
except ImportError:  # pragma: no cover
    from click import Group  # type: ignore[no-redef,assignment]

if TYPE_CHECKING:
    from conftest import BrokerProcess

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)
_SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")"}
_REDIRECTS = {"<", ">", ">>", "2>", "&>"}


def _code_blocks(path: Path) -> list[tuple[str, str, int, int]]:
    """(language, body, start, end) of every fenced block."""
    return [(m.group(1), m.group(2), m.start(), m.end()) for m in _BLOCK.finditer(path.read_text())]


def _gafka_lines(path: Path) -> list[str]:
    """The ``gafka ...`` command lines of the shell blocks (continuations joined, prompts, pipes and
    comments dropped)."""
    lines: list[str] = []
    for language, body, _start, _end in _code_blocks(path):
        if language not in ("sh", "console", "bash", "shell"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if "gafka " not in line:
                continue  # (a line of a multi-line quoted argument to another command may not split alone)
            lexer = shlex.shlex(line.strip().removeprefix("$ "), posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words: list[str] = []
            for token in [*lexer, ";"]:
                if token not in _SEPARATORS:
                    words.append(token)
                    continue
                while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value gafka ...
                    words.pop(0)
                if words and words[0] == "gafka":
                    cut = next((i for i, word in enumerate(words) if word in _REDIRECTS), len(words))
                    lines.append(shlex.join(words[1:cut]))
                words = []
    return lines


DOC_COMMANDS = sorted({(path.name, line) for path in DOCS for line in _gafka_lines(path)})


@pytest.mark.parametrize(("doc", "line"), DOC_COMMANDS, ids=[f"{doc}:{line[:60]}" for doc, line in DOC_COMMANDS])
def test_documented_command_lines_parse(doc: str, line: str) -> None:
    _load_plugins()
    command = typer.main.get_command(app)
    args = shlex.split(line)
    context = command.make_context("gafka", args)
    while isinstance(command, Group) and context.protected_args + context.args:
        name, sub, rest = command.resolve_command(context, context.protected_args + context.args)
        assert sub is not None and name is not None, f"{doc}: gafka {line}"
        context = sub.make_context(name, rest, parent=context)
        command = sub


def test_the_docs_have_command_lines() -> None:
    assert len(DOC_COMMANDS) > 20


def _json_documents(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    found: list[Any] = []
    index, text = 0, text.strip()
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        try:
            document, index = decoder.raw_decode(text, index)
        except ValueError:
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline + 1
            continue
        found.append(document)
    return found


def _field_paths(document: Any, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "...":
                continue
            paths.add(prefix + key)
            paths |= _field_paths(value, f"{prefix}{key}.")
    elif isinstance(document, list):
        for item in document:
            paths |= _field_paths(item, f"{prefix}[].")
    return paths


def test_documented_answers_have_their_fields(broker_factory: Any, tmp_path: Path) -> None:
    broker: BrokerProcess = broker_factory()
    text = (ROOT / "docs" / "api.md").read_text()
    env = {**os.environ, "GAFKA": broker.url}
    output: str | None = None
    previous_end = 0
    problems: list[str] = []
    checked = 0
    for language, body, start, end in _code_blocks(ROOT / "docs" / "api.md"):
        adjacent = not text[previous_end:start].strip()
        previous_end = end
        if language == "sh":
            if "gafka dev" in body:
                continue
            output = subprocess.run(
                ["bash", "-c", body], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False
            ).stdout
        elif language == "json" and output is not None and adjacent:
            example = _json_documents(body)
            expected = set().union(*(_field_paths(document) for document in example))
            actual = set().union(*(_field_paths(document) for document in _json_documents(output)))
            if expected - actual:
                line = text[:start].count("\n") + 1
                problems.append(f"docs/api.md line {line}: {sorted(expected - actual)} not in {output!r}")
            checked += 1
            output = None
        else:
            output = None
    assert checked > 10
    assert not problems, "\n".join(problems)
