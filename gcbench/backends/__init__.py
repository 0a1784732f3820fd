"""Backends by name. A new backend is one folder (server source + adapter) and one entry point: a line in
BUILTIN here, or, from a package of yours, an entry point in the `gcbench.backends` group (PROTOCOL.md,
"Adding a backend").

The Python backends also take an interpreter: `python@3.12`, `python-sdk@3.13t` (see interpreters.py)."""

from __future__ import annotations

import importlib.metadata

from gcbench.backends import interpreters
from gcbench.backends.base import Backend
from gcbench.errors import GcbenchError

ENTRY_POINT_GROUP = "gcbench.backends"  # a package of yours adds a backend here: NAME = "module:BackendClass"
# The built-in backends, declared as entry points of the same group (in `gcbench backends` order).
BUILTIN = (
    "python = gcbench.backends.python:PythonBackend",
    "python-sdk = gcbench.backends.python_sdk:PythonSdkBackend",
    "go = gcbench.backends.go:GoBackend",
    "rust = gcbench.backends.rust:RustBackend",
    "stall = gcbench.backends.stall:StallBackend",
    "node = gcbench.backends.node:NodeBackend",
    "node-sdk = gcbench.backends.node_sdk:NodeSdkBackend",
    "java = gcbench.backends.java:JavaBackend",
    "inproc = gcbench.backends.inproc:InprocBackend",
)


def _builtin_entry_points() -> list[importlib.metadata.EntryPoint]:
    out = []
    for line in BUILTIN:
        name, _, value = (part.strip() for part in line.partition("="))
        out.append(importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP))
    return out


def _load(ep: importlib.metadata.EntryPoint) -> type[Backend]:
    """The backend class an entry point names, checked: a Backend subclass whose name is the entry point's."""
    where = f"entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP}"
    dist = getattr(ep, "dist", None)
    where += f", package {dist.name})" if dist is not None else ")"
    try:
        cls = ep.load()
    except Exception as e:  # a user's package: any import error becomes one line naming it
        raise GcbenchError(f"backend {where}: cannot load it: {type(e).__name__}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise GcbenchError(f"backend {where}: {ep.value} is not a gcbench.backends.base.Backend subclass")
    if cls.name != ep.name:
        raise GcbenchError(f"backend {where}: the class is named {cls.name!r}; give the entry point its name")
    return cls


def _registry() -> dict[str, type[Backend]]:
    """Every backend by name: the built-ins, then those installed packages declare in the entry-point group."""
    builtin = {ep.name: ep for ep in _builtin_entry_points()}
    reg = {name: _load(ep) for name, ep in builtin.items()}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in builtin:
            if ep.value == builtin[ep.name].value:
                continue  # gcbench's own declaration
            raise GcbenchError(f"backend entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP}): {ep.name!r} "
                               "is a built-in backend; give yours another name")
        if ep.name not in reg:
            reg[ep.name] = _load(ep)
    return reg


# Backends a run uses when none is named: every available one that runs out of process.
def default_backend_names() -> list[str]:
    return [name for name, cls in _registry().items() if cls.in_default_run and cls().availability().ok]


def all_backends() -> list[Backend]:
    return [cls() for cls in _registry().values()]


def split_name(name: str) -> tuple[str, str | None]:
    """`python@3.12` -> ("python", "3.12"); `go` -> ("go", None)."""
    base, at, version = name.partition("@")
    return base, (version if at else None)


def get_backend(name: str, pythons: tuple[str, ...] = ()) -> Backend:
    """The backend a name selects; `python@3.12`-style names run a Python backend under another CPython
    (pythons: interpreters given with --python, searched before the discovered ones)."""
    reg = _registry()
    base, version = split_name(name)
    if base not in reg:
        takes = [n for n, c in reg.items() if getattr(c, "takes_interpreter", False)]
        raise GcbenchError(f"unknown backend {name!r}; known backends: {', '.join(reg)} "
                           f"({' and '.join(takes)} also as NAME@VERSION, e.g. {takes[0]}@3.12)")
    cls = reg[base]
    if version is None:
        backend = cls()
    else:
        if not getattr(cls, "takes_interpreter", False):
            takes = ", ".join(n for n, c in reg.items() if getattr(c, "takes_interpreter", False))
            raise GcbenchError(f"backend {name!r}: {base} takes no @version (only {takes} do, e.g. {takes.split(',')[0]}@3.12)")
        spec = interpreters.parse_spec(version, base)
        backend = cls(interpreters.find(base, spec, interpreters.discovered(tuple(pythons))), version)
    avail = backend.availability()
    if not avail.ok:
        raise GcbenchError(f"backend {name} is not available: {avail.reason}")
    return backend


def interpreter_backends(pythons: tuple[str, ...] = ()) -> list[Backend]:
    """One backend per (Python backend, interpreter found), named by the shortest version that selects it."""
    found = interpreters.discovered(tuple(pythons))
    named = [(v, it) for v, it in interpreters.selecting_names(found) if v]
    return [cls(it, v) for cls in _registry().values() if getattr(cls, "takes_interpreter", False)
            for v, it in named]


def select_backends(names: list[str] | None, server_cmd: str = "", tool: str = "work",
                    tool_args: dict | None = None, runtime: str | None = None, pythons: tuple[str, ...] = (),
                    url: str | None = None,
                    server_url: str | None = None, server_events: str | None = None) -> list[Backend]:
    """The backends of a run: the named ones (default: every available server backend) and a user's server
    (started from a command, or already running at a URL)."""
    chosen = [get_backend(n, pythons) for n in dict.fromkeys(names)] if names else []
    if server_cmd and server_url:
        raise GcbenchError("--server-cmd starts a server, --server-url drives a running one: give one of them")
    if url and not server_cmd:
        raise GcbenchError("--url says where the server --server-cmd starts listens; for a running server use "
                           "--server-url")
    if server_events and not server_url:
        raise GcbenchError("--server-events applies to --server-url (a server gcbench starts needs no file)")
    if server_cmd:
        from gcbench.backends.custom import CustomBackend

        custom = CustomBackend(server_cmd, tool=tool, tool_args=tool_args, runtime=runtime, url=url)
        avail = custom.availability()
        if not avail.ok:
            raise GcbenchError(f"--server-cmd: {avail.reason}")
        chosen.append(custom)
    elif server_url:
        from gcbench.backends.custom.url import UrlBackend, check_reachable

        remote = UrlBackend(server_url, tool=tool, tool_args=tool_args, runtime=runtime, events_path=server_events)
        check_reachable(remote)
        chosen.append(remote)
    elif runtime is not None:
        raise GcbenchError("--runtime applies to --server-cmd or --server-url (or [server] command in the "
                           "scenario); give one")
    elif not names:
        chosen = [get_backend(n) for n in default_backend_names()]
    return chosen
