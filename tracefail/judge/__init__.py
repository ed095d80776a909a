"""LLM judge: prompts, backends (local causal LM, OpenAI-compatible HTTP), calibration, batch runner."""
