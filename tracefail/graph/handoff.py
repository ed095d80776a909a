"""Agent hand-off graphs of traces and what their shape says: cycles, repeated hand-off loops,
centrality, and steps that repeat earlier ones.

A hand-off is one agent's step followed by another agent's step (or a step that names its
recipient). A tool result is not an agent's turn: many formats name its speaker "tool", and
counting it would invent hand-offs such as "tool -> Planner", so tool results are left out.
The graph keeps counts and the step indices behind every edge, so a view can jump from an edge
back to the steps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import networkx as nx


def _get(step: Any, key: str) -> Any:
    return step.get(key) if isinstance(step, Mapping) else getattr(step, key, None)


def is_tool_result(step: Any) -> bool:
    """A step that returns a tool's output (role or kind "tool", or it answers a call id)."""
    role, kind = str(_get(step, "role") or "").lower(), str(_get(step, "kind") or "").lower()
    return role == "tool" or kind == "tool" or bool(_get(step, "tool_call_id"))


def agent_sequence(steps: Iterable[Any]) -> list[tuple[int, str]]:
    """(step_idx, agent) for the steps that name an agent, in trace order."""
    return [(int(_get(s, "step_idx")), str(_get(s, "agent"))) for s in steps if _get(s, "agent")]


def handoff_graph(
    steps: Sequence[Any], *, flagged: Iterable[int] = (), mistake_agent: str | None = None
) -> nx.DiGraph:
    """Nodes are agents (attributes: steps, flagged_steps, mistake), edges are hand-offs
    (attributes: count, steps = the step indices where the hand-off left the source agent).

    `steps` are model.Step objects or mappings with step_idx, agent and optionally recipient.
    """
    flagged_set = set(flagged)
    graph = nx.DiGraph()
    ordered = sorted(steps, key=lambda s: int(_get(s, "step_idx")))
    named = [s for s in ordered if _get(s, "agent") and not is_tool_result(s)]
    for step in named:
        agent = str(_get(step, "agent"))
        idx = int(_get(step, "step_idx"))
        if agent not in graph:
            graph.add_node(agent, steps=[], flagged_steps=[], mistake=agent == mistake_agent)
        graph.nodes[agent]["steps"].append(idx)
        if idx in flagged_set:
            graph.nodes[agent]["flagged_steps"].append(idx)
    for current, following in zip(named, [*named[1:], None], strict=True):
        source = str(_get(current, "agent"))
        recipient = _get(current, "recipient")
        target = str(recipient) if recipient else (str(_get(following, "agent")) if following else None)
        if target is None or target == source:
            continue
        if target not in graph:
            graph.add_node(target, steps=[], flagged_steps=[], mistake=target == mistake_agent)
        if graph.has_edge(source, target):
            graph.edges[source, target]["count"] += 1
            graph.edges[source, target]["steps"].append(int(_get(current, "step_idx")))
        else:
            graph.add_edge(source, target, count=1, steps=[int(_get(current, "step_idx"))])
    return graph


@dataclass
class Loop:
    """A cycle of agents repeated back to back: `agents` once, `repeats` times, over steps
    first_step..last_step."""

    agents: list[str]
    repeats: int
    first_step: int
    last_step: int


def _has_smaller_period(window: list[str]) -> bool:
    n = len(window)
    return any(n % p == 0 and window == window[:p] * (n // p) for p in range(1, n))


def repeated_loops(steps: Sequence[Any], *, min_repeats: int = 3, max_period: int = 4) -> list[Loop]:
    """Hand-off cycles (period 2..max_period speakers) repeated at least `min_repeats` times in a
    row, found on the speaker sequence with consecutive turns of one agent merged."""
    turns: list[tuple[str, int, int]] = []  # agent, first step, last step
    for idx, agent in agent_sequence(steps):
        if turns and turns[-1][0] == agent:
            turns[-1] = (agent, turns[-1][1], idx)
        else:
            turns.append((agent, idx, idx))
    agents = [t[0] for t in turns]
    loops: list[Loop] = []
    i = 0
    while i < len(agents):
        found = None
        for period in range(2, max_period + 1):
            window = agents[i : i + period]
            if len(window) < period or len(set(window)) != period or _has_smaller_period(window):
                continue
            repeats = 1
            while agents[i + repeats * period : i + (repeats + 1) * period] == window:
                repeats += 1
            if repeats >= min_repeats:
                found = Loop(window, repeats, turns[i][1], turns[i + repeats * period - 1][2])
                break
        if found:
            loops.append(found)
            i += found.repeats * len(found.agents)
        else:
            i += 1
    return loops


_SPACE = re.compile(r"\s+")


def _shingles(text: str, k: int = 3) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[i : i + k]) for i in range(max(1, len(words) - k + 1))}


def normalized(text: str) -> str:
    """Lower-cased with runs of white space collapsed: the form repetition is judged on."""
    return _SPACE.sub(" ", text).strip().lower()


def repeated_steps(
    steps: Sequence[Any], *, min_chars: int = 40, similarity: float = 0.9, ignore: Iterable[str] = ()
) -> list[list[int]]:
    """Groups of steps whose text repeats an earlier step (word 3-shingle Jaccard >= similarity
    on the normalized text). Each group is [first, repeat, repeat, ...]. Texts in `ignore`
    (normalized canned replies) never count."""
    skip = set(ignore)
    seen: list[tuple[int, set[tuple[str, ...]]]] = []
    groups: dict[int, list[int]] = {}
    for step in sorted(steps, key=lambda s: int(_get(s, "step_idx"))):
        text = normalized(str(_get(step, "content") or ""))
        if len(text) < min_chars or text in skip:
            continue
        idx = int(_get(step, "step_idx"))
        shingles = _shingles(text)
        for first, earlier in seen:
            if len(shingles & earlier) / len(shingles | earlier) >= similarity:
                groups.setdefault(first, [first]).append(idx)
                break
        else:
            seen.append((idx, shingles))
    return [groups[k] for k in sorted(groups)]


@dataclass
class GraphMeasures:
    agents: int
    handoffs: int
    distinct_handoffs: int
    density: float
    cycles: list[list[str]] = field(default_factory=list)  # simple cycles of up to 4 agents
    loops: list[Loop] = field(default_factory=list)
    betweenness: dict[str, float] = field(default_factory=dict)
    in_degree: dict[str, int] = field(default_factory=dict)  # hand-offs received
    out_degree: dict[str, int] = field(default_factory=dict)  # hand-offs given

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rotated(cycle: list[Any]) -> list[Any]:
    """The cycle started at its smallest agent name, so the same cycle always reads the same."""
    start = min(range(len(cycle)), key=lambda i: str(cycle[i]))
    return cycle[start:] + cycle[:start]


def measures(graph: nx.DiGraph, steps: Sequence[Any] | None = None, *, max_cycle: int = 4) -> GraphMeasures:
    """Size, density, short cycles, weighted degrees and betweenness centrality of a hand-off graph;
    with the trace's steps, also the repeated hand-off loops."""
    cycles = sorted(
        (_rotated(c) for c in nx.simple_cycles(graph, length_bound=max_cycle) if len(c) > 1),
        key=lambda c: (len(c), [str(n) for n in c]),
    )
    return GraphMeasures(
        agents=graph.number_of_nodes(),
        handoffs=int(sum(d["count"] for _, _, d in graph.edges(data=True))),
        distinct_handoffs=graph.number_of_edges(),
        density=nx.density(graph) if graph.number_of_nodes() > 1 else 0.0,
        cycles=[list(c) for c in cycles],
        loops=repeated_loops(steps) if steps is not None else [],
        betweenness=nx.betweenness_centrality(graph) if graph.number_of_nodes() else {},
        in_degree=dict(graph.in_degree(weight="count")),
        out_degree=dict(graph.out_degree(weight="count")),
    )


def corpus_graph(edges: Iterable[Mapping[str, Any]]) -> nx.DiGraph:
    """A graph from aggregated edge rows (source, target, handoffs, traces)."""
    graph = nx.DiGraph()
    for row in edges:
        graph.add_edge(row["source"], row["target"], count=int(row["handoffs"]), traces=int(row["traces"]))
    return graph
