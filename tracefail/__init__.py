"""tracefail: find out why LLM agents and multi-agent systems fail."""

__version__ = "0.1.0"
