"""The shape of the code: models record what must happen, never do it.

Read from the source (every import, at the top of a module or inside a
function): from any app's models, no chain of imports reaches the code that
talks to the gateway, the broker's actors, the live stream or outbound HTTP.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("core", "inbox", "automations")
NETWORK = {
    "inbox.gateway",
    "inbox.connector",
    "inbox.tasks",
    "inbox.live",
    "automations.outbound",
    "automations.tasks",
    "requests",
    "urllib3",
    "websockets",
    "channels.layers",
}


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "tests" in path.parts or "migrations" in path.parts:
                continue
            module = _module_of(path)
            imported: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {alias.name for alias in node.names}
                elif (
                    isinstance(node, ast.ImportFrom) and node.module and not node.level
                ):
                    imported.add(node.module)
                    # "from inbox import live" imports the module inbox.live.
                    imported |= {f"{node.module}.{a.name}" for a in node.names}
            graph[module] = imported
    return graph


def _reach(graph: dict[str, set[str]], start: str) -> dict[str, list[str]]:
    """Every module reachable from ``start``, with one import chain to it."""
    paths = {start: [start]}
    todo = [start]
    while todo:
        module = todo.pop()
        for name in graph.get(module, ()):
            if name not in paths:
                paths[name] = [*paths[module], name]
                if name in graph:
                    todo.append(name)
    return paths


def test_no_models_module_imports_network_code() -> None:
    graph = _graph()
    for models in ("core.models", "inbox.models", "automations.models"):
        reached = _reach(graph, models)
        bad = {name: chain for name, chain in reached.items() if name in NETWORK}
        assert not bad, "\n".join(" → ".join(chain) for chain in bad.values())


def test_the_graph_sees_a_chain_when_there_is_one() -> None:
    # The checker itself: a module that does reach the network is caught.
    reached = _reach(_graph(), "inbox.ingest")
    assert "inbox.models" in reached
    assert "inbox.gateway" in _reach(_graph(), "inbox.tasks")
