"""What a real server works on, made by gcbench so that it runs offline and repeatably (seeded, fixed dates).

- folder: a tree of a few hundred text files (notes, docs, code, CSV) for the filesystem server;
- repo: a git repository with a few dozen commits (git CLI, fixed author and dates) and one unstaged change;
- site: pages of HTML served by a loopback HTTP server (serve.py) that mcp-server-fetch reaches as its proxy,
  so the trace's fixed URLs (http://docs.gcbench.test/...; .test is reserved, never on the network) all land
  on 127.0.0.1;
- memory-file / none: an empty folder (the memory server's graph file goes there).

A run builds the template once (build_template); each cell works on a fresh copy of it (cell_copy), so every
cell starts from the same state whatever the previous cell's calls changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gcbench import procs
from gcbench.backends.process import ManagedProcess
from gcbench.errors import GcbenchError
from gcbench.trace import WORDS

SITE_HOST = "docs.gcbench.test"
SERVE_SCRIPT = Path(__file__).with_name("serve.py")
FOLDER_FILES = 300
REPO_COMMITS = 36
SITE_PAGES = 100
GIT_TIMEOUT_S = 60
START_TIMEOUT_S = 10.0
_TOPICS = ("billing", "search", "ingest", "auth", "reports", "storage", "alerts", "sync")


def _sentence(rng: np.random.Generator) -> str:
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), int(rng.integers(6, 16)))]
    return " ".join(words).capitalize() + "."


def _paragraph(rng: np.random.Generator, sentences: tuple[int, int] = (3, 7)) -> str:
    return " ".join(_sentence(rng) for _ in range(int(rng.integers(*sentences))))


def fill_folder(root: Path, files: int = FOLDER_FILES, seed: int = 1) -> list[Path]:
    """A project-like tree of `files` text files under root; returns their paths (the same for the same seed)."""
    rng = np.random.default_rng([seed, 0x464F4C44])
    made = []
    for i in range(files):
        topic = _TOPICS[i % len(_TOPICS)]
        kind = i % 5
        if kind == 0:
            path = root / "notes" / topic / f"meeting-{i:03d}.md"
            text = f"# {topic.title()} meeting {i}\n\n" + "\n\n".join(
                f"- {_sentence(rng)}" for _ in range(int(rng.integers(4, 12)))) + "\n"
        elif kind == 1:
            path = root / "docs" / topic / f"guide-{i:03d}.md"
            text = f"# {topic.title()} guide, part {i}\n\n" + "\n\n".join(
                f"## {WORDS[int(rng.integers(len(WORDS)))].title()}\n\n{_paragraph(rng)}" for _ in range(3)) + "\n"
        elif kind == 2:
            path = root / "src" / topic / f"module_{i:03d}.py"
            names = [WORDS[j] for j in rng.integers(0, len(WORDS), 4)]
            text = f'"""{_sentence(rng)}"""\n\n' + "\n\n".join(
                f"def {n}_{i}(value):\n    # {_sentence(rng)}\n    return value * {int(rng.integers(2, 9))}\n"
                for n in names)
        elif kind == 3:
            path = root / "data" / topic / f"export-{i:03d}.csv"
            rows = [f"{j},{WORDS[int(rng.integers(len(WORDS)))]},{rng.integers(0, 10_000)}"
                    for j in range(int(rng.integers(20, 80)))]
            text = "id,name,amount\n" + "\n".join(rows) + "\n"
        else:
            path = root / "journal" / f"2026-{(i % 12) + 1:02d}-{(i % 28) + 1:02d}-{i:03d}.txt"
            text = "\n\n".join(_paragraph(rng) for _ in range(int(rng.integers(2, 6)))) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        made.append(path)
    (root / "README.md").write_text("# Project workspace\n\n" + _paragraph(rng) + "\n")
    return made


def _git(args: list[str], repo: Path, env: dict[str, str]) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, stdin=subprocess.DEVNULL, preexec_fn=procs.die_with_parent())
    except FileNotFoundError:
        raise GcbenchError("the git fixture needs the git command on PATH") from None
    except subprocess.TimeoutExpired:
        raise GcbenchError(f"git {args[0]} took more than {GIT_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise GcbenchError(f"git {' '.join(args[:2])} failed: {(proc.stderr or proc.stdout).strip()[:200]}")
    return proc.stdout


def make_repo(root: Path, commits: int = REPO_COMMITS, seed: int = 1) -> None:
    """A git repository of `commits` commits on main (fixed author, dates a day apart: the same hashes every
    time), a `feature/search` branch, and one unstaged change in the work tree."""
    rng = np.random.default_rng([seed, 0x52455030])
    root.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(root), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "Ada Example", "GIT_AUTHOR_EMAIL": "ada@example.test",
           "GIT_COMMITTER_NAME": "Ada Example", "GIT_COMMITTER_EMAIL": "ada@example.test", "LC_ALL": "C"}
    _git(["init", "-q", "-b", "main"], root, env)
    t0 = 1_767_225_600  # 2026-01-01T00:00:00Z
    for c in range(commits):
        topic = _TOPICS[c % len(_TOPICS)]
        path = root / "src" / f"{topic}.py"
        path.parent.mkdir(exist_ok=True)
        with open(path, "a") as f:
            f.write(f"\n\ndef step_{c}(value):\n    # {_sentence(rng)}\n    return value + {c}\n")
        doc = root / "docs" / f"{topic}.md"
        doc.parent.mkdir(exist_ok=True)
        with open(doc, "a") as f:
            f.write(f"\n## Change {c}\n\n{_paragraph(rng, (2, 4))}\n")
        stamp = f"@{t0 + c * 86_400} +0000"
        _git(["add", "-A"], root, env)
        _git(["commit", "-q", "-m", f"{topic}: {_sentence(rng)[:60]}"], root,
             {**env, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
        if c == commits // 2:
            _git(["branch", "feature/search"], root, env)
    with open(root / "src" / "search.py", "a") as f:
        f.write("\n\n# work in progress: " + _sentence(rng) + "\n")


def _page(rng: np.random.Generator, i: int, pages: int) -> str:
    title = " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), 3)).title()
    nav = "".join(f'<li><a href="/articles/page-{j}.html">Article {j}</a></li>' for j in range(min(pages, 12)))
    sections = []
    for s in range(int(rng.integers(3, 7))):
        head = WORDS[int(rng.integers(len(WORDS)))].title()
        paras = "".join(f"<p>{_paragraph(rng)}</p>" for _ in range(int(rng.integers(2, 5))))
        items = "".join(f"<li>{_sentence(rng)}</li>" for _ in range(int(rng.integers(3, 7))))
        sections.append(f'<section id="s{s}"><h2>{head}</h2>{paras}<ul>{items}</ul></section>')
    rows = "".join(f"<tr><td>{WORDS[int(rng.integers(len(WORDS)))]}</td><td>{int(rng.integers(1, 999))}</td></tr>"
                   for _ in range(8))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title} - Docs</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<style>body{font-family:sans-serif;max-width:60em;margin:auto}nav{float:left}</style>'
            '<script>window.analytics=window.analytics||[];</script></head><body>'
            f'<header><a href="/">Docs home</a><form action="/search"><input name="q"></form></header>'
            f'<nav><ul>{nav}</ul></nav><main><article><h1>{title}</h1>'
            f'<p class="byline">Updated 2026-{(i % 12) + 1:02d}-01</p>{"".join(sections)}'
            f'<table><thead><tr><th>Name</th><th>Count</th></tr></thead><tbody>{rows}</tbody></table>'
            '</article></main><footer><p>Example docs site made by gcbench for a repeatable fetch.</p></footer>'
            '</body></html>\n')


def make_site(root: Path, pages: int = SITE_PAGES, seed: int = 1) -> None:
    """index.html, articles/page-0.html ... page-{pages-1}.html and a robots.txt under root."""
    rng = np.random.default_rng([seed, 0x53495445])
    (root / "articles").mkdir(parents=True, exist_ok=True)
    for i in range(pages):
        (root / "articles" / f"page-{i}.html").write_text(_page(rng, i, pages))
    (root / "index.html").write_text(_page(rng, pages, pages))
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")


def build_template(kind: str, root: Path, seed: int = 1) -> None:
    """The fixture `kind` (RealServer.fixture) built under root, which must not exist yet."""
    root.mkdir(parents=True)
    if kind == "folder":
        fill_folder(root, seed=seed)
    elif kind == "repo":
        make_repo(root, seed=seed)
    elif kind == "site":
        make_site(root, seed=seed)
    elif kind not in ("memory-file", "none"):
        raise GcbenchError(f"unknown fixture {kind!r}")


def cell_copy(template: Path, dest: Path) -> Path:
    """A fresh copy of the template for one cell (symlinks kept as links)."""
    shutil.copytree(template, dest, symlinks=True)
    return dest


class LoopbackSite:
    """serve.py in its own process group, serving a folder on 127.0.0.1 (a free port) as an HTTP proxy and a
    plain server alike; stop() ends it and everything it started."""

    def __init__(self, folder: Path, timeout_s: float = START_TIMEOUT_S) -> None:
        with procs.held():
            self.process = ManagedProcess([sys.executable, str(SERVE_SCRIPT), str(folder)], dict(os.environ),
                                          "loopback site", stderr=subprocess.DEVNULL)
        try:
            self.port = self._read_port(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _read_port(self, timeout_s: float) -> int:
        import selectors

        out = self.process.proc.stdout
        sel = selectors.DefaultSelector()
        sel.register(out, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise GcbenchError(f"the loopback site did not start within {timeout_s:g} s")
                line = out.readline().decode("ascii", "replace").split()
                if len(line) == 2 and line[0] == "LISTENING" and line[1].isdigit():
                    return int(line[1])
                raise GcbenchError(f"the loopback site did not start: {' '.join(line)[:80]!r}")
        finally:
            sel.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        try:
            self.process.terminate(1.0)
        finally:
            self.process.release()
            if self.process.proc.stdout:
                self.process.proc.stdout.close()
