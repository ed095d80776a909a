"""The facade the CLI and the TUI share: ingest, features, label, evaluate, stats, browse. No printing."""
