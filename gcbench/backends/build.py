"""Build servers written in compiled languages once, cached by a hash of their sources and toolchain."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from gcbench import procs
from gcbench.errors import GcbenchError


def cache_dir() -> Path:
    """The user's gcbench cache folder (private to the user): $GCBENCH_CACHE or $XDG_CACHE_HOME/gcbench."""
    root = os.environ.get("GCBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gcbench"
    )
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = path.stat()
        if st.st_uid != os.getuid():
            raise GcbenchError(f"cache folder {path} belongs to another user; set GCBENCH_CACHE to a folder of yours")
        if st.st_mode & 0o077:
            path.chmod(0o700)  # servers are built and run from here: private to the user
    except OSError as e:
        raise GcbenchError(f"cache folder {path}: {e.strerror or e}; set GCBENCH_CACHE to a writable folder") from None
    return path


def install_into_cache(target: Path, fill: Callable[[Path], None], is_complete: Callable[[Path], bool],
                       folder: bool = True) -> Path:
    """Make `target` (a folder, or a file with folder=False) appear in the cache complete or not at all.

    ``fill(staged)`` creates it under a temporary name beside the target; one rename then puts it in place.
    When another run got there first (the rename fails over its folder), its copy is kept if complete.
    """
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        staged = work if folder else work / target.name
        fill(staged)
        try:
            os.rename(staged, target)  # atomic: what has the final name is always complete
        except OSError:
            if not is_complete(target):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def run_tool(argv: list[str], cwd: Path, env: dict[str, str] | None = None,
             timeout_s: float | None = None) -> subprocess.CompletedProcess:
    """Run a build or install step (compiler, npm, pip) that dies with gcbench; output captured as text."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout_s,
                          stdin=subprocess.DEVNULL, preexec_fn=procs.die_with_parent())


def run_install_step(argv: list[str], what: str, cwd: Path, timeout_s: float) -> str:
    """run_tool for an install step (pip, npm, venv): its stdout, or one GcbenchError line naming `what` and the
    tool's own last explanation (pip's "ERROR: ..." lines, not its warnings about index locations)."""
    try:
        proc = run_tool(argv, cwd, timeout_s=timeout_s)
    except subprocess.TimeoutExpired:
        raise GcbenchError(f"{what} took more than {timeout_s:g} s") from None
    except OSError as e:
        raise GcbenchError(f"{what}: cannot run {argv[0]} ({e.strerror or e})") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        detail = [ln for ln in lines if not ln.startswith("WARNING:")][-4:]
        raise GcbenchError(f"{what} failed (exit code {proc.returncode}): {' | '.join(detail)[:400]}")
    return proc.stdout


def source_hash(sources: Sequence[Path], toolchain_version: str) -> str:
    h = hashlib.sha256(toolchain_version.encode())
    for src in sorted(sources):
        h.update(src.name.encode())
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def cached_build(
    name: str,
    sources: Sequence[Path],
    toolchain_version: str,
    build: Callable[[Path, Path], list[str]],
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
    env: dict[str, str] | None = None,
) -> Path:
    """Return the path of the built executable, building it first if this source hash was never built.

    ``build(workdir, out_path)`` returns the argv that compiles into ``out_path``; it runs in a fresh
    temporary folder holding copies of the sources, and the result is moved into the cache atomically.
    """
    digest = source_hash(sources, toolchain_version)
    target = cache_dir() / "build" / f"{name}-{digest}" / name
    if target.is_file() and os.access(target, os.X_OK):
        return target
    log(f"gcbench: building the {name} server ({toolchain_version}) into {target.parent} (once per source change)")
    with tempfile.TemporaryDirectory(prefix=f"gcbench-build-{name}-") as tmp:
        work = Path(tmp)
        for src in sources:
            shutil.copy2(src, work / src.name)
        out = work / name
        argv = build(work, out)
        proc = run_tool(argv, work, {**os.environ, **(env or {})})
        if proc.returncode != 0 or not out.is_file():
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise GcbenchError(f"building the {name} server failed ({' '.join(argv[:2])}): {' | '.join(detail)}")
        install_into_cache(target, lambda staged: shutil.copy2(out, staged), lambda t: t.is_file(), folder=False)
    return target
