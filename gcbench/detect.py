"""What runtime a server command really runs: a pure function of (argv, PATH and a few variables, filesystem).

`--server-cmd "mcp-server-time"` names a console script, not an interpreter: the GC probe can only be attached
when gcbench knows the command ends up in CPython, Node, Go or a JVM. `detect_runtime` follows what the kernel
and the usual launchers would do, without running anything:

- an interpreter named directly (python3.11, pypy3, node, java), after PATH look-up and symlinks;
- `env [-S] [NAME=V] CMD`, `nice`, `nohup`, `setsid`, `timeout`, `sh -c "CMD"`: the command they start;
- a script: its shebang (`#!/usr/bin/python3`, `#!/usr/bin/env python3`, `#!/usr/bin/env -S node --flag`), pip's
  `#!/bin/sh` + `'''exec' "/long/path/python"` trick, a pyenv shim (`exec pyenv exec NAME`), a shell launcher
  that `exec`s an interpreter or calls `$JAVACMD` / `$JAVA_HOME` (Gradle/Maven start scripts);
- `python -m mod`, `uv run ...`, `uvx NAME` / `uv tool run` / `pipx run` (a Python package's console script),
  `npx` / `npm exec` / `pnpm dlx` (node), `go run`, `java -jar x.jar`, an executable jar;
- an ELF binary carrying Go build info: the 14-byte magic "\\xff Go buildinf:" that starts the
  `.go.buildinfo` section (what `go version -m` reads), found through the section headers, else by a scan.

The result says how it was found, one step per hop, so the user can check it (and override it with --runtime).
"""

from __future__ import annotations

import mmap
import os
import re
import shlex
import shutil
import struct
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

RUNTIMES = ("python", "node", "go", "java", "other")
GO_BUILDINFO_MAGIC = b"\xff Go buildinf:"
MAX_HOPS = 12  # shebang chains, wrappers and symlinks followed before giving up (loops)
HEAD_BYTES = 64 * 1024  # how much of a script is read to find its shebang and an exec line

_PYTHON_NAME = re.compile(r"^(python|pypy)(\d+(\.\d+)*)?[dmtu]*(-dbg)?$")
_NODE_NAME = re.compile(r"^node(js)?(\d+)?$")
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "ash"}
_JS_EXT = (".js", ".mjs", ".cjs")
# python options that take a value (the others are single-letter flags that can be combined: -Esu)
_PY_VALUE_OPTS = {"-W", "-X", "--check-hash-based-pycs"}
# node options that take a value as the next word
_NODE_VALUE_OPTS = {"-r", "--require", "--import", "--loader", "--experimental-loader", "-C", "--conditions",
                    "--env-file", "--input-type", "--title", "--inspect-port"}
# uv options that take a value as the next word (uv run / uvx / uv tool run)
_UV_VALUE_OPTS = {"--with", "-w", "--with-requirements", "--with-editable", "--python", "-p", "--project",
                  "--directory", "--package", "--extra", "--group", "--only-group", "--no-group", "--index",
                  "--default-index", "--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--env-file",
                  "--from", "--cache-dir", "--config-file", "--color", "--index-strategy", "--keyring-provider",
                  "--resolution", "--prerelease", "--exclude-newer", "--link-mode", "--refresh-package",
                  "--reinstall-package", "--upgrade-package", "-P", "--no-build-package", "--no-binary-package",
                  "--only-binary-package", "--config-setting", "-C", "--constraints", "-c", "--overrides",
                  "--build-constraints", "-b", "--allow-insecure-host", "--python-platform"}
_PY_ISOLATING_FLAGS = {
    "I": "-I (isolated mode: PYTHONPATH is ignored)",
    "E": "-E (PYTHON* variables, PYTHONPATH too, are ignored)",
    "S": "-S (no site module, so no sitecustomize runs)",
}


@dataclass(frozen=True)
class Detection:
    runtime: str  # one of RUNTIMES
    interpreter: str | None  # the program that runs the server's code (python, node, java, the Go binary)
    how: str  # the evidence, one hop after another
    version: str | None = None  # when the file says it (a Go binary's build info: "go1.22.5")
    warning: str | None = None  # why the usual probe attach cannot work (python -I/-E/-S)

    def to_dict(self) -> dict:
        return asdict(self)


class _Walk:
    def __init__(self, path: str | None, cwd: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.cwd = cwd
        self.env = env
        self.steps: list[str] = []
        self.hops = 0

    def result(self, runtime: str, interpreter: str | None, why: str, **kw) -> Detection:
        return Detection(runtime, interpreter, "; ".join([*self.steps, why]), **kw)

    def which(self, name: str) -> str | None:
        """Where the kernel would find `name`: a path with a slash is taken from cwd, a bare name from PATH."""
        if os.sep in name:
            full = os.path.normpath(os.path.join(self.cwd, os.path.expanduser(name)))
            return full if os.path.isfile(full) else None
        if self.path is None or self.path == "":
            return None
        return shutil.which(name, path=self.path)


def detect_runtime(argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None) -> Detection:
    """The runtime `argv` ends up running. env: the server's environment (PATH, PYENV_VERSION); cwd: its folder."""
    env = dict(os.environ if env is None else env)
    walk = _Walk(env.get("PATH"), os.path.abspath(cwd or os.getcwd()), env)
    return _detect(list(argv), walk)


def _detect(argv: list[str], w: _Walk) -> Detection:
    w.hops += 1
    if w.hops > MAX_HOPS:
        return w.result("other", None, f"gave up after {MAX_HOPS} hops (a loop?)")
    if not argv or not argv[0]:
        return w.result("other", None, "empty command")
    name = argv[0]
    base = os.path.basename(name)
    by_name = _by_name(base, argv, w)
    if by_name is not None:
        return by_name
    found = w.which(name)
    if found is None:
        return _by_extension(name, w, f"{name!r} not found" + ("" if os.sep in name else " on PATH"))
    real = os.path.realpath(found)
    if real != found:
        w.steps.append(f"{name} -> {real}")
        by_real = _by_name(os.path.basename(real), [real, *argv[1:]], w, shown=found)
        if by_real is not None:
            return by_real
    elif found != name:
        w.steps.append(f"{name} is {found}")
    try:
        with open(real, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as e:
        return w.result("other", None, f"cannot read {real}: {e.strerror or e}")
    if head.startswith(b"#!"):
        return _script(found, real, head, argv, w)
    if head.startswith(b"\x7fELF"):
        return _elf(found, real, w)
    if head.startswith(b"PK\x03\x04") and real.endswith(".jar"):
        return _java(["java", "-jar", found, *argv[1:]], w, "an executable jar (run by java through binfmt)")
    return _by_extension(real, w, f"{real} has no shebang and is no ELF binary")


def _by_extension(path: str, w: _Walk, why: str) -> Detection:
    if path.endswith((".py", ".pyz")):
        return w.result("python", None, f"{why}; a .py file")
    if path.endswith(_JS_EXT):
        return w.result("node", None, f"{why}; a {os.path.splitext(path)[1]} file")
    if path.endswith(".jar"):
        return w.result("java", None, f"{why}; a .jar file")
    return w.result("other", None, why)


def _by_name(base: str, argv: list[str], w: _Walk, shown: str | None = None) -> Detection | None:
    """Interpreters and launchers recognised by their name alone; None: look at the file."""
    exe = shown or argv[0]
    if _PYTHON_NAME.match(base):
        return _python(argv, w, exe)
    if _NODE_NAME.match(base):
        return w.result("node", w.which(exe) or exe, f"{base} is Node.js{_node_script(argv)}")
    if base == "java":
        return _java(argv, w, "java is a JVM launcher", exe)
    rest = argv[1:]
    if base == "env":
        return _env(rest, w)
    if base in ("nohup", "setsid", "nice", "timeout"):
        return _after_options(base, rest, w)
    if base in _SHELLS and len(rest) >= 2 and rest[0] == "-c":
        if re.search(r"[;&|<>`$()]", rest[1]):
            return w.result("other", None, f"{base} -c runs a shell command line; name the runtime with --runtime")
        w.steps.append(f"{base} -c {rest[1]!r}")
        return _detect(shlex.split(rest[1]), w)
    if base in _SHELLS and rest and not rest[0].startswith("-"):
        return _shell_file(base, rest, w)
    if base == "uvx" or (base == "uv" and rest[:2] == ["tool", "run"]):
        tool = _first_word(rest[2:] if base == "uv" else rest, _UV_VALUE_OPTS)
        return w.result("python", None, f"{'uvx' if base == 'uvx' else 'uv tool run'} runs a Python package's "
                                        f"console script ({tool or '?'}) in a uv-made environment")
    if base == "uv" and rest[:1] == ["run"]:
        return _uv_run(rest[1:], w)
    if base == "pipx" and rest[:1] == ["run"]:
        return w.result("python", None, "pipx run runs a Python package's console script")
    if base in ("poetry", "pdm", "hatch") and rest[:1] == ["run"]:
        w.steps.append(f"{base} run starts the rest in its Python environment")
        return _detect(rest[1:], w)
    if base in ("npx", "pnpx") or (base in ("npm", "pnpm", "yarn") and rest[:1] in (["exec"], ["dlx"])):
        return w.result("node", w.which("node"), f"{base}{' ' + rest[0] if base not in ('npx', 'pnpx') else ''} "
                                                 "runs a package's bin script with node")
    if base in ("bun", "bunx", "deno"):
        return w.result("other", w.which(exe), f"{base} is not Node.js (its own JavaScript engine and GC)")
    if base == "go" and rest[:1] == ["run"]:
        return w.result("go", None, "go run builds and runs a Go program")
    return None


def _first_word(args: list[str], value_opts: set[str]) -> str | None:
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return args[i + 1] if i + 1 < len(args) else None
        if a.startswith("-"):
            i += 2 if a in value_opts else 1
            continue
        return a
    return None


def _python(argv: list[str], w: _Walk, exe: str) -> Detection:
    interp = w.which(exe) or exe
    isolating: list[str] = []
    what = ""
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-m", "-c") or (a[:2] in ("-m", "-c") and len(a) > 2 and not a.startswith("--")):
            value = a[2:] or (args[i + 1] if i + 1 < len(args) else "?")
            what = f" running module {value} (python -m)" if a[1] == "m" else " running -c code"
            break
        if a == "--" or a == "-" or not a.startswith("-"):
            script = args[i + 1] if a == "--" and i + 1 < len(args) else a
            what = f" running {script}" if script not in ("--", "-") else ""
            break
        if a in _PY_VALUE_OPTS:
            i += 2
            continue
        if not a.startswith("--") and a[1:2] not in ("W", "X"):
            isolating += [_PY_ISOLATING_FLAGS[c] for c in a[1:] if c in _PY_ISOLATING_FLAGS]
        i += 1
    warning = None
    if isolating:
        warning = f"python runs with {'; '.join(dict.fromkeys(isolating))}: the sitecustomize probe cannot attach"
    return w.result("python", interp, f"{os.path.basename(exe)} is CPython{what}", warning=warning)


def _node_script(argv: list[str]) -> str:
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-e", "--eval", "-p", "--print"):
            return " running --eval code"
        if a.startswith("-"):
            i += 2 if a in _NODE_VALUE_OPTS else 1
            continue
        return f" running {a}"
    return ""


def _java(argv: list[str], w: _Walk, why: str, exe: str | None = None) -> Detection:
    args = argv[1:]
    what = ""
    if "-jar" in args and args.index("-jar") + 1 < len(args):
        what = f" running the jar {args[args.index('-jar') + 1]}"
    elif "-m" in args or "--module" in args:
        what = " running a module"
    return w.result("java", w.which(exe) if exe else w.which("java"), why + what)


def _env(args: list[str], w: _Walk) -> Detection:
    """env [-i] [-u NAME] [-S 'CMD ARGS'] [NAME=VALUE]... CMD ARGS (a shebang gives -S... as one word)."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-u", "--unset", "-C", "--chdir"):
            i += 2
        elif a.startswith(("-S", "--split-string")):
            split = a[2:] if a.startswith("-S") else a.partition("=")[2]
            if not split and i + 1 < len(args):
                split, i = args[i + 1], i + 1
            w.steps.append(f"env -S splits {split.strip()!r}")
            return _detect([*shlex.split(split), *args[i + 1:]], w)
        elif a == "--":
            i += 1
            break
        elif a.startswith("-") or ("=" in a and not a.startswith("=")):
            i += 1
        else:
            break
    if i >= len(args):
        return w.result("other", None, "env without a command")
    w.steps.append(f"env runs {args[i]}")
    return _detect(args[i:], w)


def _after_options(base: str, args: list[str], w: _Walk) -> Detection:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ("-n", "--adjustment", "-s", "--signal", "-k", "--kill-after") else 1
    if base == "timeout":
        i += 1  # the duration
    if i >= len(args):
        return w.result("other", None, f"{base} without a command")
    w.steps.append(f"{base} runs {args[i]}")
    return _detect(args[i:], w)


def _uv_run(args: list[str], w: _Walk) -> Detection:
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-m", "--module"):
            w.steps.append("uv run -m")
            return w.result("python", None, f"runs module {args[i + 1] if i + 1 < len(args) else '?'} in the "
                                            "project's Python environment")
        if a == "--":
            i += 1
            break
        if a.startswith("-"):
            i += 2 if a in _UV_VALUE_OPTS else 1
            continue
        break
    if i >= len(args):
        return w.result("python", None, "uv run without a command starts the project's Python")
    cmd = args[i]
    if cmd.endswith(".py") or cmd.startswith(("http://", "https://")):
        return w.result("python", None, f"uv run runs the script {cmd} with the project's Python")
    venv_cmd = os.path.join(w.cwd, ".venv", "bin", cmd)
    if os.sep not in cmd and os.path.isfile(venv_cmd):
        w.steps.append(f"uv run finds {cmd} in the project environment {venv_cmd}")
        return _detect([venv_cmd, *args[i + 1:]], w)
    if w.which(cmd) is not None or _by_name(os.path.basename(cmd), [cmd], _Walk(w.path, w.cwd, w.env)):
        w.steps.append(f"uv run starts {cmd}")
        return _detect(args[i:], w)
    return w.result("python", None, f"uv run starts {cmd}, assumed a console script of the project's Python "
                                    "environment")


def _shebang(head: bytes) -> list[str]:
    """The interpreter and its one optional argument, as the Linux kernel splits a shebang line."""
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    interp, _, arg = line.partition(" ")
    if not interp:
        interp, _, arg = line.lstrip().partition(" ")
    arg = arg.strip()
    return [interp, arg] if arg else [interp]


def _script(found: str, real: str, head: bytes, argv: list[str], w: _Walk) -> Detection:
    shebang = _shebang(head)
    w.steps.append(f"{found} is a script: #!{' '.join(shebang)}")
    return _detect([*shebang, found, *argv[1:]], w)


def _shell_file(shell: str, args: list[str], w: _Walk) -> Detection:
    """`sh SCRIPT ARGS` (also what a #!/bin/sh or #!/usr/bin/env bash shebang becomes): read the script."""
    found = w.which(args[0]) if os.sep in args[0] else os.path.join(w.cwd, args[0])
    try:
        with open(found or args[0], "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as e:
        return w.result("other", None, f"cannot read the {shell} script {args[0]}: {e.strerror or e}")
    shell_result = _shell_script(args[0], head, args, w)
    if shell_result is not None:
        return shell_result
    return w.result("other", None, f"a {shell} script that starts no interpreter gcbench recognises; "
                                   "name the runtime with --runtime")


_PIP_SH_TRICK = re.compile(r"^'''exec' (\"[^\"]+\"|'[^']+'|\S+)", re.M)  # pip/uv's shebang for long paths
_EXEC_LINE = re.compile(r"^\s*exec\s+(.+)$", re.M)
_JAVA_MARKERS = re.compile(r"\bJAVACMD\b|\$\{?JAVA_HOME\b|\bexec\s+java\b")


def _shell_script(found: str, head: bytes, argv: list[str], w: _Walk) -> Detection | None:
    text = head.decode("utf-8", "replace")
    m = _PIP_SH_TRICK.search(text)
    if m:
        interp = m.group(1).strip("\"'")
        w.steps.append(f"its '''exec' line runs {interp} (pip's shebang for long paths)")
        return _detect([interp, found, *argv[1:]], w)
    for line in _EXEC_LINE.findall(text):
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        while words and ("=" in words[0] and not words[0].startswith("=")):
            words.pop(0)
        if not words:
            continue
        prog = words[0]
        base = os.path.basename(prog)
        if base == "pyenv" and words[1:3] == ["exec", "$program"]:
            return _pyenv_shim(found, text, argv, w)
        if "JAVACMD" in prog or "JAVA_HOME" in prog:
            return _java(["java", *words[1:]], w, f"its exec line runs {prog} (a JVM start script)")
        if "$" in prog and not base.strip("${}\"'"):
            continue
        probe = _by_name(base, [base, *words[1:]], _Walk(w.path, w.cwd, w.env))
        if probe is not None and probe.runtime != "other":
            w.steps.append(f"its exec line runs {prog}")
            return _detect([prog if "$" not in prog else base, *words[1:]], w)
    if _JAVA_MARKERS.search(text):
        return _java(["java"], w, "it calls java through $JAVACMD / $JAVA_HOME (a JVM start script)")
    return None


def _pyenv_shim(found: str, text: str, argv: list[str], w: _Walk) -> Detection:
    """A pyenv shim runs `pyenv exec NAME`: NAME from the selected version's bin folder."""
    program = os.path.basename(found)
    m = re.search(r'export PYENV_ROOT="([^"]+)"', text)
    root = m.group(1) if m else os.path.dirname(os.path.dirname(found))
    versions = _pyenv_versions(root, w)
    for v in versions:
        candidate = os.path.join(root, "versions", v, "bin", program)
        if os.path.isfile(candidate):
            w.steps.append(f"a pyenv shim: version {v} has {candidate}")
            return _detect([candidate, *argv[1:]], w)
    return w.result("python", None, f"a pyenv shim for {program} (not found for pyenv version "
                                    f"{', '.join(versions) or '?'}): a program of a pyenv Python installation")


def _pyenv_versions(root: str, w: _Walk) -> list[str]:
    """pyenv's own order: PYENV_VERSION, a .python-version in cwd or above, then ROOT/version."""
    if w.env.get("PYENV_VERSION"):
        return w.env["PYENV_VERSION"].replace(":", " ").split()
    d = w.cwd
    files = []
    while True:
        files.append(os.path.join(d, ".python-version"))
        if os.path.dirname(d) == d:
            break
        d = os.path.dirname(d)
    files.append(os.path.join(root, "version"))
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                words = [ln.split("#", 1)[0].strip() for ln in f]
        except OSError:
            continue
        return [v for v in words if v and v != "system"]
    return []


def _elf(found: str, real: str, w: _Walk) -> Detection:
    version = go_build_version(real)
    if version is not None:
        return w.result("go", found, f"{found} is an ELF binary with Go build info", version=version or None)
    return w.result("other", found, f"{found} is an ELF binary without Go build info (C, C++, Rust, ...)")


def go_build_version(path: str) -> str | None:
    """'' or 'go1.22.5' when the ELF file carries Go build info, None when it does not.

    The `.go.buildinfo` section starts with the 14-byte magic, a pointer size byte and a flags byte; from
    Go 1.18 (flags & 2) the version follows at offset 32 as a varint-length-prefixed string.
    """
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            off = _elf_section_offset(m, b".go.buildinfo")
            if off is None or m[off:off + len(GO_BUILDINFO_MAGIC)] != GO_BUILDINFO_MAGIC:
                off = m.find(GO_BUILDINFO_MAGIC)  # no section headers (stripped): the magic is 16-aligned
                while off != -1 and off % 16:
                    off = m.find(GO_BUILDINFO_MAGIC, off + 1)
                if off == -1:
                    return None
            return _go_version_at(m, off)
    except (OSError, ValueError, struct.error):
        return None


def _go_version_at(m, off: int) -> str:
    if off + 33 > len(m) or not m[off + 15] & 2:
        return ""  # before Go 1.18 the version is behind a pointer: not worth chasing here
    n, shift, i = 0, 0, off + 32
    while i < len(m):
        b = m[i]
        n |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            break
        shift += 7
    text = bytes(m[i:i + n]).decode("utf-8", "replace")
    return text if text.startswith("go") and n < 64 else ""


def _elf_section_offset(m, wanted: bytes) -> int | None:
    """File offset of the named section, from the ELF section headers (32/64-bit, either byte order)."""
    if m[:4] != b"\x7fELF":
        return None
    is64 = m[4] == 2
    end = "<" if m[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", m, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", m, 0x3A)
    else:
        shoff, = struct.unpack_from(end + "I", m, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", m, 0x2E)
    if not shoff or not shnum or shstrndx >= shnum:
        return None

    def section(i: int) -> tuple[int, int]:  # (name offset in .shstrtab, file offset)
        base = shoff + i * shentsize
        if is64:
            name, = struct.unpack_from(end + "I", m, base)
            offset, = struct.unpack_from(end + "Q", m, base + 0x18)
        else:
            name, = struct.unpack_from(end + "I", m, base)
            offset, = struct.unpack_from(end + "I", m, base + 0x10)
        return name, offset

    strtab = section(shstrndx)[1]
    for i in range(shnum):
        name, offset = section(i)
        start = strtab + name
        if m[start:start + len(wanted) + 1] == wanted + b"\0":
            return offset
    return None
