"""The model catalog: every local checkpoint the workbench can load, found without loading it.

Scans the configured roots for Hugging Face folders, PEFT adapters, GGUF files and the
Hugging Face cache layout (``models--org--name/snapshots/<rev>``), adds the embedded models
and finished training runs. Parameter counts come from safetensors/GGUF headers, so a
listing reads no weights.
"""
from __future__ import annotations

import functools
import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workbench.errors import ModelError
from workbench.models import embedded
from workbench.models.adapters import ADAPTERS
from workbench.models.capabilities import model_capabilities

MAX_DEPTH = 4


@dataclass
class CatalogEntry:
    """One loadable (or visibly unloadable) checkpoint, described from its files alone.

    ``family`` is the architecture family (None when unknown), ``format`` how it is stored,
    ``status`` whether it can be loaded ("ok", "unsupported", "broken") with ``error`` saying why
    not, and ``capabilities`` what it can be used for (``workbench.plugin_types.MODEL_CAPABILITIES``).
    """

    name: str
    path: Path
    format: str  # hf | peft | gguf
    family: str | None
    n_params: int | None
    source: str  # models | root | hf-cache | run | embedded
    base: str | None = None
    status: str = "ok"  # ok | unsupported | broken
    error: str | None = None
    capabilities: frozenset[str] = frozenset()

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["path"] = str(self.path)
        row["params"] = _human(self.n_params)
        row["family"] = self.family or "?"
        row["capabilities"] = ", ".join(sorted(self.capabilities))
        return row


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def safetensors_params(folder: Path) -> int | None:
    """Sum tensor sizes from safetensors headers (8-byte length + JSON); no weights read."""
    total = 0
    files = list(folder.glob("*.safetensors"))
    if not files:
        return None
    for f in files:
        try:
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
        except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError):
            return None
        for key, meta in header.items():
            if key != "__metadata__":
                count = 1
                for dim in meta["shape"]:
                    count *= dim
                total += count
    return total


def gguf_params(path: Path) -> int | None:
    """Parameter count from the GGUF tensor table (memoized: parsing takes seconds)."""
    stat = path.stat()
    return _gguf_params(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _gguf_params(path: str, _size: int, _mtime_ns: int) -> int | None:
    try:
        from gguf import GGUFReader

        return int(sum(int(t.n_elements) for t in GGUFReader(path).tensors))
    except Exception:
        return None


def _model_type(folder: Path) -> str | None:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, json.JSONDecodeError):
        return None


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").exists():
        return True
    try:
        return bool(json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def _hf_entry(path: Path, name: str | None, source: str) -> CatalogEntry:
    model_type = _model_type(path)
    adapter = ADAPTERS.get(model_type or "")
    entry = CatalogEntry(name or path.name, path, "hf", adapter.family if adapter else None, safetensors_params(path), source,
                         capabilities=model_capabilities(adapter, "hf", chat=_has_chat_template(path)))
    if adapter is None:
        entry.status, entry.error = "unsupported", f"model_type {model_type!r} has no architecture adapter"
    return entry


def describe(path: Path, name: str | None = None, source: str = "root") -> CatalogEntry | None:
    """A catalog entry for one checkpoint path, or None if it is not one."""
    if path.is_file() and path.suffix == ".gguf":
        return CatalogEntry(name or path.stem, path, "gguf", None, gguf_params(path), source,
                            capabilities=model_capabilities(None, "gguf", chat=True))
    if not path.is_dir():
        return None
    if (path / "adapter_config.json").exists():
        try:
            cfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            cfg = {}
        return CatalogEntry(name or path.name, path, "peft", None, safetensors_params(path), source,
                            base=cfg.get("base_model_name_or_path"),
                            capabilities=model_capabilities(None, "peft", chat=_has_chat_template(path)))
    if (path / "config.json").exists() and (any(path.glob("*.safetensors")) or any(path.glob("*.bin"))):
        return _hf_entry(path, name, source)
    return None


def _hf_cache_entries(root: Path) -> list[CatalogEntry]:
    out = []
    for repo in sorted(root.glob("models--*")):
        snapshots = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime)
        if snapshots:
            name = repo.name[len("models--"):].replace("--", "/")
            entry = describe(snapshots[-1], name=name, source="hf-cache")
            if entry:
                out.append(entry)
    return out


def scan_roots(roots: list[Path], source: str = "root") -> list[CatalogEntry]:
    """Walk each root (to a bounded depth) and describe every checkpoint found."""
    entries: list[CatalogEntry] = []
    for root in roots:
        root = Path(root).expanduser()
        if not root.exists():
            continue
        entries.extend(_hf_cache_entries(root))
        stack = [(root, 0)]
        while stack:
            folder, depth = stack.pop()
            if folder.name.startswith("models--") or ".tmp-" in folder.name:
                continue
            entry = describe(folder, source=source)
            if entry:
                entries.append(entry)
                continue
            if folder.is_dir() and depth < MAX_DEPTH:
                for child in sorted(folder.iterdir()):
                    if child.is_dir() and not child.name.startswith("."):
                        stack.append((child, depth + 1))
                    elif child.suffix == ".gguf":
                        entries.append(describe(child, source=source))
    return entries


def finished_runs(runs_dir: Path) -> list[CatalogEntry]:
    """Training runs whose manifest says finished and names an output checkpoint."""
    out = []
    for manifest in sorted(runs_dir.glob("*/manifest.json")):
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if m.get("status") == "finished" and m.get("output"):
            entry = describe(manifest.parent / m["output"], name=f"run:{manifest.parent.name}", source="run")
            if entry:
                out.append(entry)
    return out


def scan_catalog(settings: Any) -> list[CatalogEntry]:
    """Everything loadable: embedded models, the home's models, user roots, HF cache, runs."""
    entries: list[CatalogEntry] = []
    demo_dir = embedded.demo_model_dir(settings)
    try:
        if not (demo_dir / "config.json").exists():
            entries.append(describe(embedded.demo_gguf_path(), name=embedded.DEMO_MODEL_NAME, source="embedded"))
        entries.append(describe(embedded.embedder_path(), name=embedded.EMBEDDER_NAME, source="embedded"))
    except ModelError:
        pass
    for root_entries in (scan_roots([settings.models_dir], "models"), scan_roots(settings.model_roots), finished_runs(settings.runs_dir)):
        entries.extend(root_entries)
    hf_cache = [r for r in settings.all_model_roots() if r not in (settings.models_dir, *settings.model_roots)]
    entries.extend(e for r in hf_cache for e in _hf_cache_entries(r))
    seen: set[Path] = set()
    unique = []
    for e in entries:
        if e is not None and e.path.resolve() not in seen:
            seen.add(e.path.resolve())
            unique.append(e)
    return unique


def find_entry(entries: list[CatalogEntry], name_or_path: str) -> CatalogEntry | None:
    for e in entries:
        if name_or_path in (e.name, str(e.path)):
            return e
    return None
