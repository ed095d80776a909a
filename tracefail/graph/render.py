"""Hand-off graphs as text, JSON, Graphviz DOT or a PNG picture.

Agent names come from traces and are untrusted: DOT strings are quoted and escaped, text output
is returned as plain strings for the caller to print without markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx

from tracefail.graph.handoff import GraphMeasures


def as_json(graph: nx.DiGraph, graph_measures: GraphMeasures, **extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "nodes": [{"agent": n, **d} for n, d in graph.nodes(data=True)],
        "edges": [{"source": a, "target": b, **d} for a, b, d in graph.edges(data=True)],
        "measures": graph_measures.as_dict(),
    }


def as_text(graph: nx.DiGraph, graph_measures: GraphMeasures, title: str) -> str:
    lines = [title]
    for node, data in sorted(graph.nodes(data=True)):
        marks = []
        if data.get("mistake"):
            marks.append("MISTAKE AGENT")
        if data.get("flagged_steps"):
            marks.append(f"flagged steps {', '.join(map(str, data['flagged_steps']))}")
        size = (
            f"{len(data['steps'])} steps"
            if "steps" in data
            else f"{graph_measures.in_degree.get(node, 0)} in / {graph_measures.out_degree.get(node, 0)} out"
        )
        centrality = graph_measures.betweenness.get(node, 0.0)
        lines.append(
            f"  agent {node}: {size}, betweenness {centrality:.2f}"
            + (f"  [{'; '.join(marks)}]" if marks else "")
        )
    for a, b, data in sorted(graph.edges(data=True), key=lambda e: (-e[2]["count"], e[0], e[1])):
        extra = f" in {data['traces']} traces" if "traces" in data else ""
        lines.append(f"  {a} -> {b}: {data['count']} hand-offs{extra}")
    m = graph_measures
    lines.append(
        f"  {m.agents} agents, {m.handoffs} hand-offs ({m.distinct_handoffs} distinct), "
        f"density {m.density:.2f}"
    )
    for cycle in m.cycles[:10]:
        lines.append(f"  cycle: {' -> '.join([*cycle, cycle[0]])}")
    for loop in m.loops:
        lines.append(
            f"  repeated loop: {' -> '.join(loop.agents)} x{loop.repeats} "
            f"(steps {loop.first_step}-{loop.last_step})"
        )
    return "\n".join(lines) + "\n"


def _quote(text: object) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def as_dot(graph: nx.DiGraph, title: str) -> str:
    lines = [f"digraph {_quote(title)} {{", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    for node, data in graph.nodes(data=True):
        attrs = [f"label={_quote(node)}"]
        if data.get("mistake"):
            attrs += ["color=red", "penwidth=2"]
        if data.get("flagged_steps"):
            attrs += ['style="rounded,filled"', 'fillcolor="#fde2e1"']
        lines.append(f"  {_quote(node)} [{', '.join(attrs)}];")
    for a, b, data in graph.edges(data=True):
        width = 1 + min(4, data["count"] / 2)
        lines.append(f"  {_quote(a)} -> {_quote(b)} [label={_quote(data['count'])}, penwidth={width:.1f}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(graph: nx.DiGraph, title: str, ax: Any, max_agents: int = 14) -> None:
    """Draw on a matplotlib axis: mistake agent red, agents with flagged steps pink, edge width
    by hand-off count. Only the `max_agents` busiest agents are drawn, so big corpora stay legible."""
    ax.axis("off")
    if graph.number_of_nodes() > max_agents:
        degree = dict(graph.degree(weight="count"))
        keep = sorted(graph.nodes, key=lambda n: (-degree[n], str(n)))[:max_agents]
        title = f"{title} (busiest {max_agents} of {graph.number_of_nodes()} agents)"
        graph = graph.subgraph(keep)
    ax.set_title(title, fontsize=10)
    if not graph.number_of_nodes():
        ax.text(0.5, 0.5, "no agents", ha="center", va="center")
        return
    pos = nx.circular_layout(graph)
    colours = [
        "#d62728" if d.get("mistake") else ("#f4a6a0" if d.get("flagged_steps") else "#9ecae1")
        for _, d in graph.nodes(data=True)
    ]
    counts = [d["count"] for _, _, d in graph.edges(data=True)]
    top = max(counts, default=1)
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_color=colours, node_size=900, edgecolors="#333333")
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=7, labels={n: str(n)[:18] for n in graph.nodes})
    nx.draw_networkx_edges(
        graph,
        pos,
        ax=ax,
        width=[0.8 + 3.2 * c / top for c in counts],
        arrowsize=12,
        connectionstyle="arc3,rad=0.12",
        edge_color="#555555",
        node_size=900,
    )
    nx.draw_networkx_edge_labels(
        graph,
        pos,
        ax=ax,
        edge_labels={(a, b): d["count"] for a, b, d in graph.edges(data=True)},
        font_size=7,
        connectionstyle="arc3,rad=0.12",
    )


def write_png(graph: nx.DiGraph, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["text.parse_math"] = False  # agent names are data: a "$" must not start mathtext
    fig, ax = plt.subplots(figsize=(7, 5.5), dpi=110)
    draw(graph, title, ax)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
