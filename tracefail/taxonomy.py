"""Load and validate failure taxonomies (taxonomy/*.yaml or a user's own file) into model.Taxonomy.

Taxonomies are data, so a user's file is checked against a JSON Schema first and every problem is
reported as one line naming the file and the place inside it, before the judge ever sees it.
A file may also carry `legacy` mappings from older label versions (the MAST human file's
rounds) to its own mode ids, which `remap` applies before labels are compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tracefail.model import FailureMode, Taxonomy

SCHEMA_FILE = "taxonomy.schema.json"
DEFAULT_TAXONOMY = "mast-v1"
_SUFFIXES = (".yaml", ".yml", ".json")


MAX_ERROR_CHARS = 500


class TaxonomyError(Exception):
    """A taxonomy that cannot be found or is invalid; the message is one line naming the file.

    Messages quote the offending value, which a hostile or broken file can make megabytes long:
    the line is cut in the middle, keeping the file and field in front and the verdict at the end.
    """

    def __init__(self, message: str) -> None:
        line = " ".join(message.splitlines())
        if len(line) > MAX_ERROR_CHARS:
            line = line[: MAX_ERROR_CHARS - 120] + " … " + line[-117:]
        super().__init__(line)


@dataclass(frozen=True)
class LegacyCode:
    title: str | None
    maps_to: str | None


@dataclass(frozen=True)
class TaxonomyFile:
    """A validated taxonomy, where it came from, and its mappings from older label versions."""

    taxonomy: Taxonomy
    path: Path
    definition: dict[str, Any]
    legacy: dict[str, dict[str, LegacyCode]] = field(default_factory=dict)

    def remap(self, version: str, code: str, mode_name: str | None = None) -> tuple[str | None, str]:
        """(mode id in this taxonomy or None, why). Labels already in this version map to themselves.

        A stored title that contradicts the mapping's title means the code is not what the
        mapping thinks it is, so the label is dropped rather than silently mismatched.
        """
        if version == self.taxonomy.version:
            known = any(m.id == code for m in self.taxonomy.modes)
            return (code, "same version") if known else (None, f"unknown mode {code}")
        codes = self.legacy.get(version)
        if codes is None:
            return None, f"no mapping from version {version}"
        entry = codes.get(code)
        if entry is None:
            return None, f"version {version} has no code {code}"
        if mode_name and entry.title and _norm(entry.title) not in _norm(mode_name):
            return None, f"{version} {code}: title {mode_name!r} does not match {entry.title!r}"
        if entry.maps_to is None:
            return None, f"{version} {code} ({entry.title}) has no counterpart"
        return entry.maps_to, "mapped"


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("’", "'").split())


def taxonomy_dir() -> Path:
    """The repository's taxonomy/ folder, found from the installed package's location."""
    return Path(__file__).resolve().parents[1] / "taxonomy"


@cache
def _schema() -> dict[str, Any]:
    return json.loads((taxonomy_dir() / SCHEMA_FILE).read_text(encoding="utf-8"))


def available() -> list[Path]:
    """Shipped taxonomy files (not the schema)."""
    return sorted(p for p in taxonomy_dir().iterdir() if p.suffix in _SUFFIXES and p.name != SCHEMA_FILE)


def find(ref: str = DEFAULT_TAXONOMY) -> TaxonomyFile:
    """A taxonomy by file path, shipped file name (`mast-v1`), id (`mast`) or `id@version`."""
    path = Path(ref).expanduser()
    if path.is_file():
        return load_file(path)
    for suffix in _SUFFIXES:
        candidate = taxonomy_dir() / f"{ref}{suffix}"
        if candidate.is_file():
            return load_file(candidate)
    for candidate in available():
        loaded = load_file(candidate)
        tax = loaded.taxonomy
        if ref in (tax.id, f"{tax.id}@{tax.version}"):
            return loaded
    names = ", ".join(p.stem for p in available())
    raise TaxonomyError(f"{ref}: no such taxonomy file or id (shipped: {names})")


MAX_FILE_BYTES = 1024 * 1024  # the shipped MAST file is 11 KB
MAX_NODES = 100_000  # values after YAML aliases are expanded: an alias bomb is refused unbuilt


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values `node` stands for once aliases are expanded, in time linear in the file."""
    key = id(node)
    if key not in memo:
        memo[key] = 1  # a recursive alias counts once instead of looping
        if isinstance(node, yaml.SequenceNode):
            memo[key] += sum(_expanded_nodes(child, memo) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            memo[key] += sum(_expanded_nodes(k, memo) + _expanded_nodes(v, memo) for k, v in node.value)
        memo[key] = min(memo[key], MAX_NODES + 1)
    return memo[key]


def _parse(path: Path, text: str) -> Any:
    if path.suffix == ".json":
        return json.loads(text)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None and _expanded_nodes(root, {}) > MAX_NODES:
        raise TaxonomyError(
            f"{path}: more than {MAX_NODES:,} values once YAML aliases are expanded (an alias bomb?)"
        )
    return yaml.safe_load(text)


def load_file(path: Path) -> TaxonomyFile:
    """Parse, schema-check and cross-check one file; raise TaxonomyError with one clear line."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise TaxonomyError(f"{path}: {size:,} bytes; a taxonomy file is at most {MAX_FILE_BYTES:,}")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaxonomyError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = _parse(path, text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise TaxonomyError(f"{path}: not valid {path.suffix.lstrip('.').upper()} ({first})") from None
    return validate(data, path)


def validate(data: Any, path: Path) -> TaxonomyFile:
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise TaxonomyError(f"{path}: {where}: {first.message}{more}")
    modes = [FailureMode(**m) for m in data["modes"]]
    ids = [m.id for m in modes]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise TaxonomyError(f"{path}: modes: duplicate mode id(s) {', '.join(duplicates)}")
    for index, mode in enumerate(modes):
        if mode.category not in data["categories"]:
            raise TaxonomyError(f"{path}: modes/{index}: category {mode.category!r} is not in categories")
    legacy: dict[str, dict[str, LegacyCode]] = {}
    for version, codes in (data.get("legacy") or {}).items():
        if version == data["version"]:
            raise TaxonomyError(f"{path}: legacy/{version}: a legacy version cannot be the file's own")
        legacy[version] = {}
        for code, entry in codes.items():
            if entry["maps_to"] is not None and entry["maps_to"] not in ids:
                raise TaxonomyError(
                    f"{path}: legacy/{version}/{code}: maps_to {entry['maps_to']!r} is not a mode id"
                )
            legacy[version][code] = LegacyCode(entry.get("title"), entry["maps_to"])
    taxonomy = Taxonomy(
        id=data["id"],
        version=data["version"],
        name=data["name"],
        description=data.get("description", ""),
        categories=data["categories"],
        modes=modes,
    )
    return TaxonomyFile(taxonomy=taxonomy, path=path, definition=data, legacy=legacy)


def register(db: Any, loaded: TaxonomyFile) -> None:
    """Keep the exact definition a run used in `taxonomies`, so labels stay interpretable."""
    from tracefail.store.labels import save_taxonomy

    tax = loaded.taxonomy
    save_taxonomy(db, tax.id, tax.version, tax.name, loaded.definition)
