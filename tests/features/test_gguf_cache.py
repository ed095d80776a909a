"""The GGUF conversion cache is keyed on the file's content, and the model named from its metadata."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_lm import build_tiny_lm

from tracefail.features.errors import ModelLoadError
from tracefail.features.loading import (
    EMBEDDED_FILE,
    embedded_gguf,
    gguf_digest,
    gguf_model_name,
    load_causal_lm,
)


def test_a_lookalike_file_never_gets_cached_weights(monkeypatch, tmp_path: Path) -> None:
    """Same name, same size as a converted model: before, its cached weights were loaded."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("TRACEFAIL_CACHE", str(cache))
    fake = tmp_path / EMBEDDED_FILE
    fake.write_bytes(b"\0" * 4096)
    model, tokenizer = build_tiny_lm()
    converted = cache / "models" / f"{fake.stem}-4096"  # where a name+size key finds weights
    model.save_pretrained(converted)
    tokenizer.save_pretrained(converted)
    with pytest.raises(ModelLoadError, match="cannot read as a GGUF model"):
        load_causal_lm(str(fake), device="cpu")


def test_the_digest_is_of_the_content_and_cached_by_path_size_mtime(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRACEFAIL_CACHE", str(tmp_path / "cache"))
    one, two = tmp_path / "a" / "m.gguf", tmp_path / "b" / "m.gguf"
    for path, byte in ((one, b"\1"), (two, b"\2")):
        path.parent.mkdir()
        path.write_bytes(byte * 1000)
    assert gguf_digest(one) != gguf_digest(two)
    first, stat = gguf_digest(one), one.stat()
    one.write_bytes(b"\3" * 1000)
    os.utime(one, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert gguf_digest(one) == first  # same path, size and mtime: not hashed again
    os.utime(one, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert gguf_digest(one) != first


@pytest.mark.slow
def test_the_model_name_comes_from_the_gguf_metadata() -> None:
    assert gguf_model_name(embedded_gguf()).startswith("Smollm2 135M")
