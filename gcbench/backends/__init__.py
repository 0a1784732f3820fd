"""Backends by name. A new backend is one folder (server source + adapter) and one line here."""

from __future__ import annotations

from gcbench.backends.base import Backend
from gcbench.errors import GcbenchError


def _registry() -> dict[str, type[Backend]]:
    from gcbench.backends.inproc import InprocBackend
    from gcbench.backends.python import PythonBackend

    classes: list[type[Backend]] = [
        PythonBackend,
        InprocBackend,
    ]
    return {cls.name: cls for cls in classes}


# Backends a run uses when none is named: every available one that runs out of process.
def default_backend_names() -> list[str]:
    return [name for name, cls in _registry().items() if not cls.in_process and cls().availability().ok]


def all_backends() -> list[Backend]:
    return [cls() for cls in _registry().values()]


def get_backend(name: str) -> Backend:
    reg = _registry()
    if name not in reg:
        raise GcbenchError(f"unknown backend {name!r}; known backends: {', '.join(reg)}")
    backend = reg[name]()
    avail = backend.availability()
    if not avail.ok:
        raise GcbenchError(f"backend {name} is not available: {avail.reason}")
    return backend
