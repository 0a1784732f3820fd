"""Asking a toolchain for its version: one probe for every backend (go, javac/java, rustc, node, npm), so a
missing, broken or too old toolchain is reported the same way whichever backend needs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence

from gcbench import procs
from gcbench.backends.base import Availability

PROBE_TIMEOUT_S = 60.0


def probe(exe: str, args: Sequence[str], pattern: str, minimum: tuple[int, ...] = (), *, hint: str,
          what: str = "", env: dict[str, str] | None = None, label: Callable[[re.Match, str], str] | None = None,
          timeout_s: float = PROBE_TIMEOUT_S) -> Availability:
    """Run `exe args` and read its version with `pattern` (searched in stdout, then stderr).

    The pattern's numbered groups are the version numbers compared with `minimum`; the version reported is
    the pattern's named group `version` when it has one, else the whole match (or `label(match, text)`).
    Every failure is one reason ending with `hint`: no such program (`what`: how to call it, e.g. "go toolchain"), it could not be run, it did not say a
    version, or the version is below `minimum`.
    """
    path = exe if os.sep in exe else shutil.which(exe)
    command = " ".join([exe, *args])
    if path is None or not os.path.isfile(path):
        return Availability(False, reason=f"no {what or exe} on PATH; {hint}")
    try:
        proc = subprocess.run([path, *args], capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                              preexec_fn=procs.die_with_parent())
    except subprocess.TimeoutExpired:
        return Availability(False, reason=f"`{command}` did not answer within {timeout_s:g} s; {hint}")
    except OSError as e:
        return Availability(False, reason=f"`{command}` cannot run ({e.strerror or e}); {hint}")
    text = proc.stdout.strip()
    m = re.search(pattern, text) or re.search(pattern, proc.stderr)
    if proc.returncode != 0 or not m:
        said = (proc.stderr.strip() or text).splitlines()
        detail = f"exit code {proc.returncode}" + (f": {said[-1][:160]}" if said else "")
        return Availability(False, reason=f"`{command}` did not say its version ({detail}); {hint}")
    version = label(m, proc.stdout + proc.stderr) if label else (m.groupdict().get("version") or m.group(0))
    named = set(m.re.groupindex.values())
    numbers = tuple(int(g) for i, g in enumerate(m.groups(), 1) if i not in named and g is not None)[:len(minimum)]
    if minimum and numbers < minimum:
        need = ".".join(map(str, minimum))
        return Availability(False, version=version, reason=f"{version} is too old (needs {need}+); {hint}")
    return Availability(True, version=version)
