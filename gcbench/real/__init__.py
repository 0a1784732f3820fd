"""Real MCP servers from the package registries, run as shipped scenarios (`[server] real = "memory"`).

Declared data only (the scenario parser reads it): each server's package and pinned version, the runtime it
runs in, how it is launched, and the fixture that makes it run offline and repeatably. install.py puts the
package into gcbench's cache on first use, fixtures.py builds what the server works on, backend.py runs it
as a user's server (the custom backend: GC events and modes from outside, for its runtime).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RealServer:
    name: str  # what `[server] real` says, and the backend's name without its `real-` prefix
    registry: str  # "npm" or "pypi"
    package: str
    version: str  # pinned: installed by this exact version
    runtime: str  # "node" (npm) or "python" (PyPI): decides the GC modes
    entry: str  # npm: the script inside the package; PyPI: the module run with `python -m`
    fixture: str  # fixtures.py: what the server works on ("folder", "repo", "site", "memory-file", "none")
    args: tuple[str, ...] = ()  # fixed arguments after the command; "{root}" / "{url}" filled by the fixture
    env: tuple[tuple[str, str], ...] = ()  # fixed environment; "{root}" filled by the fixture
    # PyPI: arguments of the venv's python run once after pip install (what the package would fetch on its
    # first call otherwise: the run must stay offline)
    post_install: tuple[str, ...] = ()

    @property
    def backend_name(self) -> str:
        return f"real-{self.name}"

    @property
    def label(self) -> str:
        return f"{self.package} {self.version} ({self.registry})"


SERVERS: dict[str, RealServer] = {s.name: s for s in (
    RealServer("memory", "npm", "@modelcontextprotocol/server-memory", "2026.8.31", "node", "dist/index.js",
               "memory-file", env=(("MEMORY_FILE_PATH", "{root}/memory.jsonl"),)),
    RealServer("filesystem", "npm", "@modelcontextprotocol/server-filesystem", "2026.8.31", "node", "dist/index.js",
               "folder", args=("{root}",)),
    RealServer("sequential-thinking", "npm", "@modelcontextprotocol/server-sequential-thinking", "2026.8.31", "node",
               "dist/index.js", "none"),
    # --repository: the server refuses any other repository
    RealServer("git", "pypi", "mcp-server-git", "2026.10.19", "python", "mcp_server_git", "repo",
               args=("--repository", "{root}")),
    # a loopback site: private addresses are refused by default; robots.txt is not asked for
    RealServer("fetch", "pypi", "mcp-server-fetch", "2026.10.24", "python", "mcp_server_fetch", "site",
               args=("--ignore-robots-txt", "--allow-private-ips", "--user-agent", "gcbench-real-fetch/1"),
               # readabilipy (its HTML extractor) runs `npm install` of its Readability.js on its first call,
               # from inside a tool call: done at install time instead (without npm it uses its Python one)
               post_install=("-c", "import readabilipy.utils as u; u.run_npm_install()")),
    # the local zone fixed: the answers do not depend on the machine's TZ
    RealServer("time", "pypi", "mcp-server-time", "2026.10.19", "python", "mcp_server_time", "none",
               args=("--local-timezone", "Etc/UTC")),
)}
