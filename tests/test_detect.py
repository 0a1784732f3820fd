"""gcbench.detect: what a server command really runs, from argv, PATH and files built here (no network)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gcbench.detect import GO_BUILDINFO_MAGIC, detect_runtime, go_build_version


def _exe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    path.chmod(0o755)
    return path


@pytest.fixture
def bindir(tmp_path):
    """A PATH folder with a python3 (a symlink to this interpreter) and a stand-in `node` and `java`."""
    b = tmp_path / "bin"
    b.mkdir()
    (b / "python3").symlink_to(sys.executable)
    _exe(b / "node", "#!/bin/sh\nexit 0\n")
    _exe(b / "java", "#!/bin/sh\nexit 0\n")
    return b


def detect(argv, bindir, cwd=None, **env):
    return detect_runtime(argv, {"PATH": f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin", **env}, cwd=cwd)


def test_console_script_with_an_absolute_python_shebang(tmp_path, bindir):
    _exe(bindir / "mcp-server-time", f"""
        #!{sys.executable}
        import sys
        from mcp_server_time import main
        sys.exit(main())
    """)
    d = detect(["mcp-server-time"], bindir)
    assert d.runtime == "python"
    assert d.interpreter == sys.executable
    assert "is a script" in d.how and d.warning is None


def test_env_python3_shebang_finds_python3_on_the_given_path(tmp_path, bindir):
    _exe(bindir / "my-server", "#!/usr/bin/env python3\nprint('hi')\n")
    d = detect(["my-server", "--flag"], bindir)
    assert (d.runtime, d.interpreter) == ("python", str(bindir / "python3"))
    assert "env runs python3" in d.how


def test_env_dash_S_shebang_splits_node_and_its_flags(tmp_path, bindir):
    _exe(tmp_path / "srv.js", "#!/usr/bin/env -S node --max-old-space-size=100\nconsole.log(1)\n")
    d = detect([str(tmp_path / "srv.js")], bindir)
    assert (d.runtime, d.interpreter) == ("node", str(bindir / "node"))
    assert "env -S splits 'node --max-old-space-size=100'" in d.how


def test_pip_long_path_shebang_trick(tmp_path, bindir):
    long_python = "/opt/a very long/path/to/venv/bin/python3"
    _exe(bindir / "tool", f"""
        #!/bin/sh
        '''exec' "{long_python}" "$0" "$@"
        ' '''
        import sys
    """)
    d = detect(["tool"], bindir)
    assert (d.runtime, d.interpreter) == ("python", long_python)
    assert "pip's shebang" in d.how


def test_node_modules_bin_link_to_an_env_node_script(tmp_path, bindir):
    cli = _exe(tmp_path / "node_modules" / "some-mcp" / "dist" / "cli.js", "#!/usr/bin/env node\n'use strict';\n")
    link = tmp_path / "node_modules" / ".bin" / "some-mcp"
    link.parent.mkdir()
    link.symlink_to(os.path.relpath(cli, link.parent))
    d = detect(["node_modules/.bin/some-mcp", "--stdio"], bindir, cwd=tmp_path)
    assert (d.runtime, d.interpreter) == ("node", str(bindir / "node"))
    assert str(cli) in d.how


@pytest.mark.parametrize("argv, runtime, says", [
    (["uvx", "mcp-server-time"], "python", "uvx runs a Python package's console script (mcp-server-time)"),
    (["uvx", "--from", "pkg", "--python", "3.12", "tool"], "python", "(tool)"),
    (["uv", "tool", "run", "mcp-server-fetch"], "python", "uv tool run"),
    (["uv", "run", "--with", "mcp", "server.py"], "python", "runs the script server.py"),
    (["uv", "run", "-m", "my.mod"], "python", "runs module my.mod"),
    (["uv", "run", "node", "s.js"], "node", "node is Node.js running s.js"),
    (["npx", "-y", "@modelcontextprotocol/server-everything"], "node", "npx runs a package's bin script with node"),
    (["npm", "exec", "pkg"], "node", "npm exec"),
    (["python3", "-m", "mcp_server_time", "--local-timezone", "UTC"], "python", "running module mcp_server_time"),
    (["python3", "-u", "-X", "dev", "server.py"], "python", "running server.py"),
    (["node", "--require", "x.js", "--max-semi-space-size=8", "server.mjs"], "node", "running server.mjs"),
    (["java", "-Xmx1g", "-jar", "app.jar"], "java", "running the jar app.jar"),
    (["env", "FOO=1", "-u", "BAR", "python3", "s.py"], "python", "env runs python3"),
    (["timeout", "-s", "KILL", "60", "node", "s.js"], "node", "timeout runs node"),
    (["sh", "-c", "python3 server.py"], "python", "running server.py"),
    (["sh", "-c", "cd /srv && python3 server.py"], "other", "--runtime"),
    (["bun", "server.ts"], "other", "not Node.js"),
    (["go", "run", "./cmd/server"], "go", "go run"),
    (["server.py"], "python", "not found on PATH; a .py file"),
    (["no-such-server"], "other", "not found on PATH"),
    ([], "other", "empty command"),
])
def test_launchers_and_interpreters_by_name(bindir, argv, runtime, says):
    d = detect(argv, bindir)
    assert d.runtime == runtime, d
    assert says in d.how, d.how


def test_uv_run_finds_a_console_script_in_the_project_venv(tmp_path, bindir):
    _exe(tmp_path / ".venv" / "bin" / "my-mcp", f"#!{tmp_path}/.venv/bin/python\nimport sys\n")
    d = detect(["uv", "run", "my-mcp"], bindir, cwd=tmp_path)
    assert (d.runtime, d.interpreter) == ("python", f"{tmp_path}/.venv/bin/python")
    assert "project environment" in d.how


@pytest.mark.parametrize("flags, blocked", [(["-I"], "-I"), (["-Es"], "-E"), (["-S"], "-S"), (["-u", "-O"], None)])
def test_python_flags_that_keep_the_sitecustomize_probe_out(bindir, flags, blocked):
    d = detect(["python3", *flags, "server.py"], bindir)
    assert d.runtime == "python"
    if blocked:
        assert blocked in d.warning and "cannot attach" in d.warning
    else:
        assert d.warning is None


def test_shebang_python_with_isolating_flag_is_flagged(tmp_path, bindir):
    _exe(bindir / "iso", f"#!{sys.executable} -I\nimport sys\n")
    assert "-I" in detect(["iso"], bindir).warning


def test_pyenv_shim_resolves_to_the_selected_versions_script(tmp_path, bindir):
    root = tmp_path / "pyenv"
    py = root / "versions" / "3.12.1" / "bin" / "python3.12"
    py.parent.mkdir(parents=True)
    py.symlink_to(sys.executable)
    _exe(root / "versions" / "3.12.1" / "bin" / "mcp-tool", f"#!{py}\nimport sys\n")
    _exe(root / "versions" / "3.11.7" / "bin" / "other-tool", "#!/bin/false\n")
    (root / "version").write_text("3.11.7\n3.12.1\n")
    _exe(root / "shims" / "mcp-tool", f"""
        #!/usr/bin/env bash
        set -e
        program="${{0##*/}}"
        export PYENV_ROOT="{root}"
        exec "{root}/libexec/pyenv" exec "$program" "$@"
    """)
    d = detect(["mcp-tool"], root / "shims", cwd=tmp_path)
    assert d.runtime == "python" and d.interpreter == str(py)
    assert "pyenv shim: version 3.12.1" in d.how
    # PYENV_VERSION wins over the version file
    assert "not found for pyenv version 3.11.7" in detect(["mcp-tool"], root / "shims", PYENV_VERSION="3.11.7").how


def test_shell_launchers(tmp_path, bindir):
    _exe(bindir / "gradle-app", """
        #!/bin/sh
        APP_HOME=$(cd "${0%/*}/.." && pwd -P)
        if [ -n "$JAVA_HOME" ] ; then
            JAVACMD=$JAVA_HOME/bin/java
        else
            JAVACMD=java
        fi
        CLASSPATH=$APP_HOME/lib/app.jar
        exec "$JAVACMD" "$@" -classpath "$CLASSPATH" com.example.Main
    """)
    _exe(bindir / "py-wrapper", '#!/bin/bash\ncd "$(dirname "$0")"\nexec "$HOME/venv/bin/python3" -m srv "$@"\n')
    _exe(bindir / "nothing", "#!/bin/sh\necho hi\n")
    j = detect(["gradle-app"], bindir)
    assert j.runtime == "java" and "JVM start script" in j.how
    p = detect(["py-wrapper"], bindir)
    assert p.runtime == "python" and "exec line runs $HOME/venv/bin/python3" in p.how
    o = detect(["nothing"], bindir)
    assert o.runtime == "other" and "--runtime" in o.how


def test_an_elf_that_is_not_go(bindir):
    ls = shutil.which("ls")
    d = detect([ls], bindir)
    assert d.runtime == "other" and "without Go build info" in d.how


def _fake_go_elf(path: Path, version: bytes) -> Path:
    """An ELF header with no section headers and a 16-aligned build-info blob (Go 1.18+ layout)."""
    blob = bytearray(b"\x7fELF\x02\x01\x01" + b"\0" * 57)  # 64-bit little-endian, e_shoff = 0
    blob += b"\0" * (-len(blob) % 16) + b"padding:" + GO_BUILDINFO_MAGIC[:5] + b"\0" * 3  # a decoy, unaligned
    blob += b"\0" * (-len(blob) % 16)
    blob += GO_BUILDINFO_MAGIC + bytes([8, 2]) + b"\0" * 16 + bytes([len(version)]) + version + b"\0" * 8
    path.write_bytes(bytes(blob))
    path.chmod(0o755)
    return path


def test_go_build_info_found_by_scan_without_section_headers(tmp_path, bindir):
    go = _fake_go_elf(tmp_path / "srv", b"go1.99.1")
    assert go_build_version(str(go)) == "go1.99.1"
    d = detect([str(go)], bindir)
    assert (d.runtime, d.version, d.interpreter) == ("go", "go1.99.1", str(go))


@pytest.fixture(scope="module")
def go_binary(tmp_path_factory):
    from gcbench.backends.go import BUILD_ENV, GoBackend, _go_version

    version, reason = _go_version()
    if version is None:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("gobin")
    (work / "go.mod").write_text("module tiny\n\ngo 1.22\n")
    (work / "main.go").write_text('package main\n\nfunc main() { println("hi") }\n')
    out = work / "tiny-server"
    env = {**os.environ, **BUILD_ENV, **GoBackend().build_env()}
    proc = subprocess.run([shutil.which("go"), "build", "-o", str(out), "."], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out, version.split()[0]


def test_a_real_go_binary_and_a_symlink_to_it(tmp_path, bindir, go_binary):
    binary, version = go_binary
    (bindir / "tiny").symlink_to(binary)
    d = detect(["tiny", "--stdio"], bindir)
    assert d.runtime == "go" and d.version == version, d
    assert d.interpreter == str(bindir / "tiny")
    assert go_build_version(str(binary)) == version


def test_an_executable_jar_built_with_javac_and_jar(tmp_path, bindir):
    javac, jar = shutil.which("javac"), shutil.which("jar")
    if not (javac and jar):
        pytest.skip("no javac/jar")
    (tmp_path / "Main.java").write_text("public class Main { public static void main(String[] a) {} }\n")
    subprocess.run([javac, "-d", str(tmp_path), str(tmp_path / "Main.java")], check=True, timeout=120)
    app = tmp_path / "app.jar"
    subprocess.run([jar, "--create", "--file", str(app), "--main-class", "Main", "-C", str(tmp_path), "Main.class"],
                   check=True, timeout=120)
    app.chmod(0o755)
    d = detect([str(app)], bindir)
    assert d.runtime == "java" and "executable jar" in d.how and d.interpreter == str(bindir / "java")
    assert detect(["java", "-jar", str(app)], bindir).runtime == "java"


def test_a_symlink_loop_ends(tmp_path, bindir):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert detect([str(tmp_path / "a")], bindir).runtime == "other"


def test_a_shebang_loop_ends(tmp_path, bindir):
    _exe(tmp_path / "x", f"#!{tmp_path / 'y'}\n")
    _exe(tmp_path / "y", f"#!{tmp_path / 'x'}\n")
    d = detect([str(tmp_path / "x")], bindir)
    assert d.runtime == "other" and "gave up" in d.how


def test_the_custom_backend_uses_detection_and_runtime_overrides_it(tmp_path, bindir, monkeypatch):
    from gcbench.backends.custom import CustomBackend
    from gcbench.errors import GcbenchError
    from gcbench.gcmode import parse_gc_mode

    _exe(bindir / "wrapped", "#!/usr/bin/env python3\n")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    b = CustomBackend("wrapped --stdio")
    assert b.runtime == "python" and b.unsupported_reason(parse_gc_mode("freeze")) is None
    assert "between calls" in b.unsupported_reason(parse_gc_mode("oob"))
    info = b.runtime_metadata()
    assert info["runtime_source"] == "detected" and info["detected"]["runtime"] == "python"
    assert "sitecustomize" in info["probe"]
    forced = CustomBackend("wrapped --stdio", runtime="node")
    assert forced.runtime == "node" and forced.runtime_metadata()["runtime_source"] == "--runtime"
    assert forced.unsupported_reason(parse_gc_mode("semi:8")) is None
    go = CustomBackend("wrapped", runtime="go")
    assert go.unsupported_reason(parse_gc_mode("disabled")) is None  # GOGC=off through the environment
    assert "not a Go GC setting" in go.unsupported_reason(parse_gc_mode("freeze"))
    iso = CustomBackend("python3 -I srv.py")
    assert "-I" in iso.unsupported_reason(parse_gc_mode("disabled")) and iso.runtime_metadata()["probe"] is None
    with pytest.raises(GcbenchError, match="--runtime"):
        CustomBackend("wrapped", runtime="ruby")
