"""Activation extraction over a corpus too large for one process: fixed shards, many ranks, one cache.

The corpus is cut into shards of ``shard_texts`` consecutive texts; each shard is an ordinary
content-hash cache entry (``extract_activations`` with a cache), so shard ``i`` of a corpus is
the same entry whichever run, rank or process count produced it, and a second run of any size
is a read. Ranks take every ``world_size``-th shard; the cache's write-then-rename makes two
ranks finishing the same entry harmless. ``launch_extraction`` runs the ranks with ``accelerate
launch`` (gloo on CPU, one GPU per rank otherwise) through the same generated config as DPO
jobs; rank 0 writes the list of shard keys, which the caller opens as memory maps.

    python -m workbench.activations.distributed REQUEST.json   # one rank, under accelerate launch
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.activations.cache import ActivationCache
from workbench.activations.extract import Activations, extract_activations
from workbench.errors import ConfigError, DataError, WorkbenchError
from workbench.files import atomic_write_text
from workbench.models.loading import LoadedModel, load_model
from workbench.training.launch import accelerate_command, accelerate_config, write_accelerate_config

SHARD_TEXTS = 1024
INDEX_FILE = "shards.json"


@dataclass
class ShardedActivations:
    """A corpus's activations as an ordered list of cache entries (memory-mapped, read-only)."""

    shards: list[Activations]

    @property
    def layers(self) -> list[int]:
        return self.shards[0].layers

    @property
    def n_texts(self) -> int:
        return sum(s.n_texts for s in self.shards)

    def layer_shards(self, layer: int) -> list[np.ndarray]:
        """The rows of ``layer``, shard by shard: what streaming consumers (SAE training) read."""
        return [s.get(layer) for s in self.shards]

    def get(self, layer: int) -> np.ndarray:
        """All rows of ``layer`` in one in-memory array (only for corpora that fit in RAM)."""
        return np.concatenate(self.layer_shards(layer))


def shard_bounds(n_texts: int, shard_texts: int) -> list[tuple[int, int]]:
    if shard_texts < 1:
        raise ConfigError(f"shard_texts must be at least 1, got {shard_texts}.")
    return [(a, min(a + shard_texts, n_texts)) for a in range(0, n_texts, shard_texts)]


def extract_sharded(lm: LoadedModel, texts: Sequence[str], *, cache: ActivationCache, shard_texts: int = SHARD_TEXTS,
                    prefix_lengths: Sequence[int] | None = None, rank: int = 0, world_size: int = 1,
                    barrier: Callable[[], None] = lambda: None, **extract_kwargs: Any) -> ShardedActivations:
    """Extract this rank's shards into ``cache``, wait for the others, then open every shard.

    ``extract_kwargs`` are ``extract_activations``'s (layers, pooling, batch_size, add_special_tokens).
    """
    if not texts:
        raise DataError("There are no texts to extract activations from.", field="texts", hint="Pass a non-empty list of strings.")
    bounds = shard_bounds(len(texts), shard_texts)

    def shard(i: int) -> Activations:
        a, b = bounds[i]
        return extract_activations(lm, list(texts[a:b]), cache=cache, **extract_kwargs,
                                   prefix_lengths=list(prefix_lengths[a:b]) if prefix_lengths is not None else None)

    for i in range(rank, len(bounds), world_size):
        shard(i)
    barrier()
    return ShardedActivations([shard(i) for i in range(len(bounds))])  # all cache hits now


def open_index(cache: ActivationCache, index: Path) -> ShardedActivations:
    """The shards listed in a rank-0 index file, straight from the cache."""
    keys = json.loads(index.read_text(encoding="utf-8"))["shards"]
    entries = [cache.get(key) for key in keys]
    if (missing := [k for k, e in zip(keys, entries, strict=True) if e is None]):
        raise WorkbenchError(f"{len(missing)} of {len(keys)} activation shards listed in {index} are not in {cache.root}.",
                             hint="Is another process clearing the cache? Run the extraction again.")
    return ShardedActivations([Activations.from_entry(e, from_cache=True) for e in entries if e is not None])


def launch_extraction(model: Path, texts: Sequence[str], *, cache: ActivationCache, work_dir: Path, num_processes: int,
                      cpu: bool, shard_texts: int = SHARD_TEXTS, prefix_lengths: Sequence[int] | None = None,
                      layers: list[int] | None = None, pooling: str = "last", batch_size: int = 16,
                      add_special_tokens: bool = True, dtype: str = "auto") -> ShardedActivations:
    """Run ``num_processes`` ranks with ``accelerate launch`` and return the corpus's shards."""
    if num_processes < 1:
        raise ConfigError(f"num_processes must be at least 1, got {num_processes}.")
    work_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work_dir / "texts.jsonl", "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts))
    request = {
        "model": str(model), "texts": str(work_dir / "texts.jsonl"), "cache": str(cache.root), "index": str(work_dir / INDEX_FILE),
        "cpu": cpu, "dtype": dtype, "shard_texts": shard_texts, "prefix_lengths": list(prefix_lengths) if prefix_lengths is not None else None,
        "layers": layers, "pooling": pooling, "batch_size": batch_size, "add_special_tokens": add_special_tokens,
    }
    atomic_write_text(work_dir / "request.json", json.dumps(request))
    config = write_accelerate_config(work_dir / "accelerate.yaml", accelerate_config(num_processes, cpu=cpu))
    env = dict(os.environ)
    if cpu:  # ranks share the cores instead of each starting one thread per core
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // num_processes)))
    proc = subprocess.run(accelerate_command(config, "workbench.activations.distributed", str(work_dir / "request.json")),
                          env=env, cwd=work_dir, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    (work_dir / "ranks.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise WorkbenchError(f"Data-parallel extraction failed (accelerate launch exited with {proc.returncode}):\n{tail}",
                             hint=f"The ranks' full output is in {work_dir / 'ranks.log'}.")
    return open_index(cache, work_dir / INDEX_FILE)


def main(request_path: str) -> None:
    """One rank: load the model on this rank's device, extract its shards, rank 0 writes the index."""
    from accelerate import PartialState  # torch.distributed set-up, only in launched ranks

    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    state = PartialState(cpu=request["cpu"])
    lm = load_model(request["model"], device=str(state.device), dtype=request["dtype"])
    with open(request["texts"], encoding="utf-8") as fh:
        texts = [json.loads(line) for line in fh]
    cache = ActivationCache(Path(request["cache"]))
    result = extract_sharded(lm, texts, cache=cache, shard_texts=request["shard_texts"], prefix_lengths=request["prefix_lengths"],
                             rank=state.process_index, world_size=state.num_processes, barrier=state.wait_for_everyone,
                             layers=request["layers"], pooling=request["pooling"], batch_size=request["batch_size"],
                             add_special_tokens=request["add_special_tokens"])
    if state.is_main_process:
        atomic_write_text(Path(request["index"]), json.dumps({"shards": [s.key for s in result.shards], "world_size": state.num_processes}))
    state.wait_for_everyone()


if __name__ == "__main__":
    main(sys.argv[1])
