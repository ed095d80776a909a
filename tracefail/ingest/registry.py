"""Which adapters exist and which one a file belongs to (auto-detection or `--format`)."""

from __future__ import annotations

from pathlib import Path

from tracefail.ingest.adamast import AdaMastAdapter
from tracefail.ingest.anyagent import AnyAgentAdapter
from tracefail.ingest.atif import AtifAdapter
from tracefail.ingest.autogen_state import AutoGenStateAdapter
from tracefail.ingest.base import Adapter
from tracefail.ingest.chat import OpenAIChatAdapter
from tracefail.ingest.claude_code import ClaudeCodeAdapter
from tracefail.ingest.codex import CodexAdapter
from tracefail.ingest.families.confident_ai import CONFIDENT_AI
from tracefail.ingest.families.langsmith import LANGSMITH
from tracefail.ingest.families.openhands import OPENHANDS
from tracefail.ingest.families.otlp_json import OTLP_JSON
from tracefail.ingest.families.smolagents import SMOLAGENTS
from tracefail.ingest.families.swe_agent import SWE_AGENT
from tracefail.ingest.families.tau2 import TAU2
from tracefail.ingest.families.zipkin import ZIPKIN
from tracefail.ingest.gemini_cli import GeminiCliAdapter
from tracefail.ingest.inspect_log import InspectAdapter
from tracefail.ingest.jaeger import JaegerAdapter
from tracefail.ingest.langfuse import LangfuseAdapter
from tracefail.ingest.managed_agents import ManagedAgentsAdapter
from tracefail.ingest.mast import MastFullAdapter, MastHumanAdapter
from tracefail.ingest.otel import OtlpAdapter, SpanTreeAdapter
from tracefail.ingest.phoenix import PhoenixAdapter
from tracefail.ingest.reader import SourceError, read_head
from tracefail.ingest.shapes.adapter import GenericAdapter
from tracefail.ingest.sniff_views import views
from tracefail.ingest.span_attributes import SpanAttributesAdapter
from tracefail.ingest.taubench import TauBenchAdapter
from tracefail.ingest.tracefail_export import TracefailExportAdapter
from tracefail.ingest.whowhen import WhoWhenAdapter

# Order matters: the first adapter whose sniff() accepts a file wins, so the most specific
# formats come first and the generic chat JSONL comes last.
ADAPTERS: list[Adapter] = [
    MastHumanAdapter(),
    MastFullAdapter(),
    WhoWhenAdapter(),
    TauBenchAdapter(),
    LangfuseAdapter(),
    InspectAdapter(),
    OTLP_JSON,  # an OTLP export inside a wrapper or an array: before `otel`, which wants it whole
    OtlpAdapter(),
    SpanTreeAdapter(),
    JaegerAdapter(),
    PhoenixAdapter(),
    AnyAgentAdapter(),
    AtifAdapter(),
    GeminiCliAdapter(),
    AutoGenStateAdapter(),
    AdaMastAdapter(),
    CodexAdapter(),
    ClaudeCodeAdapter(),
    ManagedAgentsAdapter(),
    SpanAttributesAdapter(),
    TracefailExportAdapter(),
    OpenAIChatAdapter(),
    # families read by the generic reader (ingest/families): after every format of its own
    SWE_AGENT,
    OPENHANDS,
    ZIPKIN,
    LANGSMITH,
    TAU2,
    SMOLAGENTS,
    CONFIDENT_AI,
]
# What no adapter claims, in any view of the file, the generic structural reader tries.
FALLBACK: Adapter = GenericAdapter()
READERS: list[Adapter] = [*ADAPTERS, FALLBACK]

# The file endings ingest looks for in folders: whatever some adapter reads.
SUFFIXES = frozenset(suffix for adapter in READERS for suffix in adapter.suffixes)


def by_name(name: str) -> Adapter:
    for adapter in READERS:
        if adapter.name == name:
            return adapter
    known = ", ".join(a.name for a in READERS)
    raise KeyError(f"unknown format {name!r}; known formats: {known}")


def detect(path: Path) -> Adapter:
    """The adapter for `path`; SourceError with a one-line reason when none fits. Sniffers see
    the first 64 KiB first, then wider views only while none has matched (`sniff_views`); a
    JSON file no adapter claims in any view goes to the generic reader."""
    for view in views(path):
        for adapter in ADAPTERS:
            if path.suffix in adapter.suffixes and adapter.sniff(path, view):
                return adapter
    if path.suffix in FALLBACK.suffixes and FALLBACK.sniff(path, read_head(path)):
        return FALLBACK
    raise SourceError("format not recognised (use --format; `tracefail formats` lists them)")


def expand(paths: list[Path]) -> list[Path]:
    """Files to ingest: files as given, directories walked for known suffixes, sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = [p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES]
            files.extend(sorted(found, key=_natural_key))
        else:
            files.append(path)
    return files


def _natural_key(path: Path) -> tuple:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path)))
