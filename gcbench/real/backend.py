"""A real registry server as a backend: the custom backend (GC events and modes from outside, for the
server's runtime: Node's modes for an npm server, CPython's for a PyPI one) on the installed package, with a
fresh fixture for every cell."""

from __future__ import annotations

import shlex
import shutil
import tempfile
import weakref
from dataclasses import replace
from pathlib import Path

from gcbench.backends.base import Availability, CellContext, LaunchSpec, ServerHandle
from gcbench.backends.custom import CustomBackend
from gcbench.errors import GcbenchError
from gcbench.gcmode import GcMode
from gcbench.real import SERVERS, RealServer, fixtures, install
from gcbench.scenario import Scenario


class RealServerBackend(CustomBackend):
    in_default_run = False

    def __init__(self, server: RealServer, installer=None) -> None:
        super().__init__(None, name=server.backend_name)
        self.server = server
        self.runtime = server.runtime
        self.runtime_source = f"declared ({server.registry} package)"
        self.description = f"{server.label}: the real server of scenario real-{server.name}"
        self._installer = installer or install.install  # tests give one that fails
        self.folder: Path | None = None
        self._base_argv: list[str] = []
        self._tmp: Path | None = None
        self._finalizer = None
        self._cells = 0
        self._cell: tuple[Path | None, fixtures.LoopbackSite | None] | None = None

    def availability(self) -> Availability:
        if self.folder is not None or install.is_installed(self.server):
            return Availability(True, version=self.server.label)
        tools = install.tools_available(self.server)
        if not tools.ok:
            return Availability(False, reason=f"{self.server.label} cannot be installed: {tools.reason}")
        return Availability(True, version=self.server.label, reason="not installed yet; installs on first use")

    def ensure_installed(self, log) -> None:
        """Install the package (once, into the cache); a failure is one GcbenchError naming the scenario."""
        if self.folder is None:
            try:
                folder = self._installer(self.server, log)
            except GcbenchError as e:
                raise GcbenchError(f"scenario real-{self.server.name}: {e}") from None
            self.folder = Path(folder)
            self._base_argv = install.command(self.server, self.folder)
            # what run.json records: the launch with its fixture's arguments (each cell fills in its own)
            self.argv = [*self._base_argv, *(a.replace("{root}", "<fixture>") for a in self.server.args)]
            self.command = shlex.join(self.argv)

    def prepare(self, log) -> None:
        self.ensure_installed(log)
        self._log = log
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix=f"gcbench-real-{self.server.name}-"))
            # removed when the run is over (this backend is dropped, or gcbench exits)
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._tmp), True)
            fixtures.build_template(self.server.fixture, self._tmp / "template")
        log(f"gcbench: real server {self.server.label}, fixture {self.server.fixture} in {self._tmp}")

    def close(self) -> None:
        """Tear the fixture down now (also done at exit)."""
        self._end_cell()
        if self._finalizer is not None:
            self._finalizer()

    def runtime_metadata(self) -> dict:
        marker = install.read_marker(self.folder) if self.folder else None
        return {**super().runtime_metadata(), "real_server": {
            "name": self.server.name, "package": self.server.package, "version": self.server.version,
            "registry": self.server.registry, "install_dir": str(self.folder) if self.folder else None,
            "packages": (marker or {}).get("packages"), "fixture": self.server.fixture}}

    # -- one cell ------------------------------------------------------------------------------------------

    def _begin_cell(self) -> tuple[list[str], dict[str, str], Path]:
        if self._tmp is None:
            raise GcbenchError(f"backend {self.name}: prepare() was not called")
        self._end_cell()  # a previous cell's, if its server never got as far as stopping
        self._cells += 1
        template = self._tmp / "template"
        site = None
        if self.server.fixture in ("folder", "repo"):
            root = fixtures.cell_copy(template, self._tmp / f"cell-{self._cells}")
        elif self.server.fixture == "site":
            root = template  # read only
            site = fixtures.LoopbackSite(template)
        else:
            root = self._tmp / f"cell-{self._cells}"
            root.mkdir()
        self._cell = (None if root == template else root, site)
        args = [a.replace("{root}", str(root)) for a in self.server.args]
        if site is not None:
            args += ["--proxy-url", site.url]
        env = {k: v.replace("{root}", str(root)) for k, v in self.server.env}
        return args, env, root

    def _end_cell(self) -> None:
        cell, self._cell = self._cell, None
        if cell is None:
            return
        folder, site = cell
        try:
            if site is not None:
                site.stop()
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        args, env, root = self._begin_cell()
        self.argv = [*self._base_argv, *args]
        self.command = shlex.join(self.argv)
        spec = super().launch_spec(mode, scenario, ctx)
        first = spec.after_exit

        def after_exit() -> None:
            try:
                if first is not None:
                    first()
            finally:
                self._end_cell()

        return replace(spec, env={**spec.env, **env}, cwd=str(root), after_exit=after_exit)

    def start(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> ServerHandle:
        try:
            return super().start(mode, scenario, ctx)
        except BaseException:
            self._end_cell()  # a server that could not even be started leaves no fixture behind
            raise


def real_backend(name: str, log, installer=None) -> RealServerBackend:
    """The backend of `[server] real = NAME`, installed (once) before any run folder exists: a package that
    cannot be installed is one GcbenchError line (exit 2)."""
    backend = RealServerBackend(SERVERS[name], installer)
    backend.ensure_installed(log)
    return backend
