"""Agent hand-off graphs (networkx): building, measures, loops and repetition, rendering."""
