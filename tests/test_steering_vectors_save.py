"""SteeringVector.save: concurrent saves of one path never collide and never leave a temp file."""
from __future__ import annotations

import threading

import torch

from workbench.steering.vectors import SteeringVector


def test_two_saves_at_once_do_not_collide(tmp_path):
    target = tmp_path / "vectors" / "v.json"
    vectors = [SteeringVector(f"v{i}", 1, torch.randn(64, generator=torch.Generator().manual_seed(i)), scale=float(i + 1))
               for i in range(8)]
    start = threading.Barrier(len(vectors))
    errors: list[BaseException] = []

    def save(vec: SteeringVector) -> None:
        start.wait()
        try:
            for _ in range(20):
                vec.save(target)
        except BaseException as exc:  # collected: an exception in a thread would otherwise be lost
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(v,)) for v in vectors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    loaded = SteeringVector.load(target)  # one complete record, from one of the writers
    assert loaded.name in {v.name for v in vectors}
    assert torch.allclose(loaded.direction, next(v for v in vectors if v.name == loaded.name).direction, atol=1e-6)  # renormalised on load
    assert [p.name for p in target.parent.iterdir()] == ["v.json"]
