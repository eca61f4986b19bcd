"""Load local checkpoints safely: Hugging Face folders, GGUF files and PEFT adapters.

Nothing is fetched from a hub (``local_files_only``); pickle weights and remote code are
refused unless the user opts in, because both execute code from the checkpoint. The
checkpoint's own files are checked before transformers reads them (``checkpoint_files``), so
a damaged config or a missing tokenizer is a ModelError naming the file and field.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.errors import ModelError, SecurityError, WorkbenchError
from workbench.files import atomic_path
from workbench.models.adapters import ArchitectureAdapter, adapter_for
from workbench.models.capabilities import model_capabilities
from workbench.models.checkpoint_files import check_config, check_tokenizer_files, read_json_object
from workbench.models.placement import Placement, plan_placement

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


@dataclass
class LoadedModel:
    """A model ready for analyses: weights, tokenizer, layout adapter and where it came from.

    ``capabilities`` come from ``model_capabilities`` like a catalog entry's, so the two agree.
    """

    model: nn.Module
    tokenizer: Any
    adapter: ArchitectureAdapter
    name: str
    path: Path
    format: str
    device: torch.device
    dtype: torch.dtype
    capabilities: frozenset[str]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def is_encoder(self) -> bool:
        return self.adapter.is_encoder

    @property
    def n_layers(self) -> int:
        return self.adapter.n_layers(self.model)


def resolve_device(preference: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU; an explicit choice that is absent is an error."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"Device {preference!r} was requested but no CUDA GPU is visible.", hint="Use --device cpu or auto.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelError(f"Device {preference!r} was requested but MPS is not available.", hint="Use --device cpu or auto.")
    return device


def resolve_dtype(preference: str, device: torch.device) -> torch.dtype:
    """bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU."""
    if preference == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.float32
    try:
        return DTYPES[preference.lower()]
    except KeyError:
        raise ModelError(f"Unknown dtype {preference!r}.", hint=f"Choose one of: auto, {', '.join(sorted(DTYPES))}.") from None


def detect_format(path: Path) -> str:
    """'gguf' for a .gguf file, 'peft' for an adapter folder, 'hf' for a model folder."""
    if not path.exists():
        raise ModelError(f"Checkpoint path {path} does not exist.", hint="Check the path, or run `workbench models` to list what is available.")
    if path.is_file():
        if path.suffix == ".gguf":
            return "gguf"
        raise ModelError(f"{path} is a file but not a .gguf file.", hint="Point at a Hugging Face model folder, a PEFT adapter folder or a .gguf file.")
    if (path / "adapter_config.json").exists():
        return "peft"
    if (path / "config.json").exists():
        return "hf"
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return "gguf"
    raise ModelError(
        f"{path} holds neither config.json (Hugging Face model), adapter_config.json (PEFT adapter) nor one .gguf file.",
        hint="Point at the folder that contains config.json, or at the .gguf file itself.",
    )


def check_weights_safe(folder: Path, *, allow_pickle: bool, stem: str = "") -> bool:
    """True if the folder has safetensors; raise unless pickle weights are explicitly allowed."""
    files = [p for p in folder.iterdir() if p.is_file() and p.name.startswith(stem)]
    if any(p.suffix == ".safetensors" for p in files):
        return True
    pickles = [p.name for p in files if p.suffix in PICKLE_SUFFIXES]
    if not pickles:
        raise ModelError(f"No weight files (*.safetensors) found in {folder}.", hint="Check that the checkpoint finished saving.")
    if not allow_pickle:
        raise SecurityError(
            f"{folder} only has pickle weights ({', '.join(sorted(pickles))}); loading them can run arbitrary code.",
            hint="Convert the checkpoint to safetensors, or pass --allow-pickle if you trust its origin.",
        )
    return False


def check_remote_code(config: dict[str, Any], path: Path, *, trust_remote_code: bool) -> None:
    """Refuse a config (read from ``path``) that needs custom Python code from the checkpoint unless opted in."""
    from transformers import CONFIG_MAPPING  # transformers: only in check_remote_code()

    if "auto_map" in config and config.get("model_type") not in CONFIG_MAPPING and not trust_remote_code:
        raise SecurityError(
            f"{path} asks to run custom code from the checkpoint (auto_map, model_type {config.get('model_type')!r}).",
            hint="Pass --trust-remote-code only if you trust the checkpoint's origin.",
        )


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def gguf_tokenizer(gguf_file: Path) -> Any:
    """The tokenizer stored inside a GGUF file (no weights are read)."""
    from transformers import AutoTokenizer  # transformers: only in gguf_tokenizer()

    return AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, local_files_only=True)


def convert_gguf(gguf_file: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF once into a safetensors folder; later loads take about a second.

    A GGUF-loaded model refuses ``save_pretrained``, so we rebuild a fresh model from its
    config, load the state dict and save that. Written through ``atomic_path``, so an
    interrupted conversion leaves nothing half-written.
    """
    from transformers import AutoModelForCausalLM  # transformers: only in convert_gguf()

    manifest_path = out_dir / "workbench-conversion.json"
    stat = gguf_file.stat()
    manifest = read_json_object(manifest_path) if manifest_path.exists() else {}
    current = manifest and "quantization_config" not in read_json_object(out_dir / "config.json")  # older conversions kept it: redo them
    # Same size and mtime as when converted: skip re-hashing the file on every load.
    if current and (manifest.get("size"), manifest.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns):
        return out_dir
    digest = file_sha256(gguf_file)
    if current and manifest.get("sha256") == digest:
        return out_dir
    try:
        with atomic_path(out_dir) as tmp:
            tok = gguf_tokenizer(gguf_file)
            gguf_model = AutoModelForCausalLM.from_pretrained(
                gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32, local_files_only=True
            )
            config = gguf_model.config
            # The weights are dequantized: a leftover GGUF quantization_config would make
            # transformers attach a GGUF quantizer, which refuses training and save_pretrained.
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            fresh.load_state_dict(gguf_model.state_dict())
            fresh.generation_config = gguf_model.generation_config
            fresh.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            (tmp / "workbench-conversion.json").write_text(
                json.dumps({"source": str(gguf_file), "sha256": digest, "size": stat.st_size,
                            "mtime_ns": stat.st_mtime_ns, "converted_at": time.time()}, indent=1)
            )
    except WorkbenchError:
        raise
    except Exception as exc:
        raise ModelError(f"Could not convert GGUF file {gguf_file}: {exc}", hint="Check that the file is a complete GGUF of a supported architecture.") from exc
    return out_dir


def load_tokenizer(folder: Path, trust_remote_code: bool) -> Any:
    """A folder's tokenizer (with a pad token), or a ModelError saying which files are missing."""
    from transformers import AutoTokenizer  # transformers: only in load_tokenizer()

    check_tokenizer_files(folder)
    try:
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises ValueError, OSError or TypeError depending on what is missing
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{folder} has no usable tokenizer ({first}).",
            hint="Copy the tokenizer files (tokenizer.json, tokenizer_config.json, …) from the original checkpoint into this folder.",
        ) from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def _load_hf(folder: Path, device: torch.device, dtype: torch.dtype, allow_pickle: bool,
             trust_remote_code: bool) -> tuple[nn.Module, Any, Placement | None]:
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM  # transformers: only in _load_hf()

    config_path = folder / "config.json"
    raw = read_json_object(config_path)
    check_config(raw, config_path)
    check_remote_code(raw, config_path, trust_remote_code=trust_remote_code)
    adapter = adapter_for(raw, source=config_path)
    safe = check_weights_safe(folder, allow_pickle=allow_pickle)
    tok = load_tokenizer(folder, trust_remote_code)  # before the weights: a missing tokenizer fails in a second
    cls = AutoModel if adapter.is_encoder else AutoModelForCausalLM
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelError(f"Could not read the config in {folder}: {exc}", hint="Check that the folder is a complete checkpoint.") from exc
    # The memory estimate comes before any weight is read: a model that cannot fit is refused with the numbers.
    placement = plan_placement(folder, config, device, dtype) if safe else None
    if placement is not None:
        log.info("Loading %s: %s", folder.name, placement.describe())
    try:
        model = cls.from_pretrained(
            folder, config=config, dtype=dtype, local_files_only=True, use_safetensors=safe, trust_remote_code=trust_remote_code,
            **(placement.from_pretrained_kwargs() if placement else {}),
        )
    except Exception as exc:
        raise ModelError(f"Could not load the model in {folder}: {exc}", hint="Check that the folder is a complete checkpoint.") from exc
    return model, tok, placement


def resolve_base(adapter_dir: Path, base: str | Path | None) -> Path:
    """A PEFT adapter's base model folder: the explicit path, else the recorded one.

    Finding a base by *name* in the catalog is ``workbench.models.resolve.adapter_base`` (the one
    resolution path), which passes the folder it found as ``base``.
    """
    if base is not None:
        candidate = Path(base).expanduser()
        if candidate.exists():
            return candidate
        raise ModelError(f"Base model {base} does not exist.", hint="Pass the folder of the base model with --base.")
    recorded = read_json_object(adapter_dir / "adapter_config.json").get("base_model_name_or_path")
    recorded = recorded if isinstance(recorded, str) else ""
    for candidate in (Path(recorded).expanduser(), adapter_dir / recorded):
        if recorded and (candidate / "config.json").exists():
            return candidate
    raise ModelError(
        f"The base model {recorded!r} named in {adapter_dir / 'adapter_config.json'} is not available locally.",
        hint="Pass --base /path/to/base-model, or load the adapter by its catalog name so its base is found by name "
             "under the model roots.",
    )


def load_model(
    path: str | Path,
    *,
    device: str = "auto",
    dtype: str = "auto",
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    base: str | Path | None = None,
    converted_dir: Path | None = None,
    name: str | None = None,
) -> LoadedModel:
    """Load any supported local checkpoint onto the chosen device, in eval mode.

    ``converted_dir`` is where GGUF files are converted to safetensors (once, keyed by the
    file's hash). A PEFT adapter's base is ``base`` or the path its config records.
    """
    path = Path(path).expanduser().resolve()
    fmt = detect_format(path)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    if fmt == "gguf":
        gguf_file = path if path.is_file() else next(path.glob("*.gguf"))
        target = (converted_dir or gguf_file.parent / "converted") / gguf_file.stem
        folder = convert_gguf(gguf_file, target)
        info["converted_to"] = str(folder)
        model, tok, placement = _load_hf(folder, dev, dt, False, False)
    elif fmt == "peft":
        from peft import PeftModel  # peft: only in load_model()

        check_weights_safe(path, allow_pickle=allow_pickle, stem="adapter_model")
        base_dir = resolve_base(path, base)
        info["base"] = str(base_dir)
        base_model, tok, placement = _load_hf(base_dir, dev, dt, allow_pickle, trust_remote_code)
        try:
            # Merged for inference so every analysis sees one plain model with the adapter in it.
            model = PeftModel.from_pretrained(base_model, path, is_trainable=False).merge_and_unload()
        except Exception as exc:
            raise ModelError(f"Could not apply the PEFT adapter {path} to {base_dir}: {exc}", hint="Check that the adapter was trained on this base model.") from exc
    else:
        model, tok, placement = _load_hf(path, dev, dt, allow_pickle, trust_remote_code)
    if placement is not None:
        info["placement"] = placement.describe()
    if placement is not None and placement.device_map:
        dev = placement.device  # split over several GPUs by accelerate: inputs go to the first one
    else:
        model.to(dev)
    model.eval()
    info["load_seconds"] = time.perf_counter() - t0
    adapter = adapter_for(model)
    return LoadedModel(
        model=model, tokenizer=tok, adapter=adapter, name=name or path.name, path=path, format=fmt, device=dev, dtype=dt,
        capabilities=model_capabilities(adapter, fmt, chat=bool(getattr(tok, "chat_template", None))), info=info,
    )
