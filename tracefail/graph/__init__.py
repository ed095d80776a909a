"""Agent hand-off graphs (networkx): building, measures, loops and repetition, rendering."""

from tracefail.graph.handoff import (
    GraphMeasures,
    Loop,
    handoff_graph,
    measures,
    repeated_loops,
    repeated_steps,
)

__all__ = ["GraphMeasures", "Loop", "handoff_graph", "measures", "repeated_loops", "repeated_steps"]
