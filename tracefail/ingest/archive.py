"""Zip members read within limits: the sizes a zip declares can lie (a 1 MB `.eval` expanded
to 5.5 GB), so every reader of an archive (the Inspect adapter, the fidelity measure) reads
members through `member`, in steps, and stops at the first limit."""

from __future__ import annotations

import zipfile
import zlib

from tracefail.ingest.reader import MAX_RECORD_BYTES

# An .eval zip is read member by member within these limits (a 1 MB zip expanded to 5.5 GB):
# a member over the record limit, or expanding more than MAX_RATIO times its compressed size,
# costs itself; past MAX_MEMBERS or MAX_EXPANDED bytes the rest of the archive is refused.
MAX_MEMBERS = 100_000
MAX_RATIO = 200
MAX_EXPANDED = 8 * 1024**3
_READ = 1024 * 1024


def member(archive: zipfile.ZipFile, name: str, budget: list[int]) -> bytes:
    """A member's bytes, read in steps and stopped at the record limit, at MAX_RATIO times its
    compressed size or at the archive's remaining budget (the sizes a zip declares can lie);
    ValueError naming the limit, or what the zip library found broken."""
    info = archive.getinfo(name)
    limit = min(MAX_RECORD_BYTES.get(), budget[0], max(MAX_RATIO * info.compress_size, _READ))
    chunks, size = [], 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(min(_READ, limit + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    break
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
        raise ValueError(f"unreadable zip member: {exc}") from None
    finally:
        budget[0] -= size
    if size > limit:
        raise ValueError(
            f"expands past {limit:,} bytes ({info.compress_size:,} compressed; limits: the record "
            f"limit, {MAX_RATIO}x its compressed size, {MAX_EXPANDED:,} bytes per archive)"
        )
    return b"".join(chunks)
