"""Real registry servers as shipped scenarios: fixtures, the `[server] real` field, install failures, one real run."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from gcbench.cli import main
from gcbench.errors import GcbenchError
from gcbench.real import SERVERS, fixtures, install
from gcbench.real.backend import RealServerBackend, real_backend
from gcbench.scenario import list_builtin, load_scenario

from .conftest import run_cli

REAL = [f"real-{n}" for n in SERVERS]


def test_fill_folder_is_a_few_hundred_text_files_the_same_for_a_seed(tmp_path):
    a = fixtures.fill_folder(tmp_path / "a")
    b = fixtures.fill_folder(tmp_path / "b")
    assert len(a) == fixtures.FOLDER_FILES >= 200
    assert {p.relative_to(tmp_path / "a") for p in a} == {p.relative_to(tmp_path / "b") for p in b}
    assert all(p.read_text() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_text() for p in a[:50])
    assert {p.suffix for p in a} >= {".md", ".py", ".csv", ".txt"}
    assert all(p.stat().st_size > 100 for p in a)


def test_git_repo_has_its_commits_a_branch_and_the_same_hashes(tmp_path):
    for name in ("a", "b"):
        fixtures.make_repo(tmp_path / name, commits=12)

    def git(name, *args):
        return subprocess.run(["git", *args], cwd=tmp_path / name, capture_output=True, text=True, check=True).stdout

    assert git("a", "rev-list", "--count", "main").strip() == "12"
    assert git("a", "rev-parse", "HEAD") == git("b", "rev-parse", "HEAD")  # fixed author and dates
    assert "feature/search" in git("a", "branch")
    assert "src/search.py" in git("a", "status", "--porcelain")  # an unstaged change for git_diff_unstaged


def test_loopback_site_serves_as_server_and_as_proxy_then_stops(tmp_path):
    fixtures.make_site(tmp_path, pages=3)
    site = fixtures.LoopbackSite(tmp_path)
    pid = site.process.pid
    try:
        with urllib.request.urlopen(f"{site.url}/articles/page-1.html", timeout=10) as r:
            page = r.read().decode()
        assert r.status == 200 and "<article>" in page and "</html>" in page
        proxy = urllib.request.build_opener(urllib.request.ProxyHandler({"http": site.url}))
        with proxy.open(f"http://{fixtures.SITE_HOST}/articles/page-1.html", timeout=10) as r:
            assert r.read().decode() == page  # absolute-form: the fetch server's requests through its proxy
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{site.url}/../../etc/passwd", timeout=10)
        assert e.value.code == 404
    finally:
        site.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_every_real_scenario_parses_is_listed_and_mixes_the_tools_its_server_has():
    listed = dict(list_builtin())
    for name in REAL:
        sc = load_scenario(name)
        assert sc.server.real == name.removeprefix("real-") and sc.trace is not None
        assert listed[name] and "invalid" not in listed[name]
        if name not in ("real-sequential-thinking", "real-fetch"):  # servers of one tool
            assert len(sc.trace.tools) >= 2, name


def test_existing_scenarios_do_not_record_a_real_field():
    """A scenario without a real server records exactly what it did before (sweep grid_hash, compare)."""
    d = load_scenario("default").to_dict()
    assert "real" not in d["server"]
    assert load_scenario("real-time").to_dict()["server"]["real"] == "time"


@pytest.mark.parametrize(("body", "field", "words"), [
    ('[server]\nreal = "postgres"\n[[trace]]\ntool = "x"\n', "server.real", "unknown real server"),
    ('[server]\nreal = 3\n[[trace]]\ntool = "x"\n', "server.real", "expected a string"),
    ('[server]\nreal = "time"\n', "server.real", "needs a trace"),
    ('[server]\nreal = "time"\ncommand = "node x.js"\n[[trace]]\ntool = "x"\n', "server.command", "leave"),
])
def test_bad_real_field_is_one_line_exit_2(write_scenario, body, field, words):
    path = write_scenario(body, "bad-real.toml")
    r = CliRunner().invoke(main, ["run", "--scenario", str(path)])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert lines[0].startswith("ERROR: ") and str(path) in lines[0] and field in lines[0] and words in lines[0]


def test_real_scenario_refuses_another_server(tmp_path):
    r = CliRunner().invoke(main, ["run", "-s", "real-time", "-b", "python", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "--backend" in r.output and "real server" in r.output
    assert not any(tmp_path.iterdir())


def _failing_installer(server, log):
    raise GcbenchError(f"cannot install {server.label}: npm install failed (exit code 1): ENOTFOUND")


def test_package_that_cannot_be_installed_is_one_line_exit_2_and_no_run_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(install, "install", _failing_installer)
    for command in (["run", "-s", "real-memory", "-o", str(tmp_path)], ["advise", "-s", "real-memory",
                                                                        "--runs-dir", str(tmp_path)]):
        r = CliRunner().invoke(main, command)
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert r.exit_code == 2 and len(lines) == 1, r.output
        assert lines[0].startswith("ERROR: scenario real-memory: cannot install @modelcontextprotocol/server-memory")
        assert "Traceback" not in r.output
    assert not any(tmp_path.iterdir())


def test_without_npm_the_backend_says_why_before_installing(monkeypatch, tmp_path):
    from gcbench.backends.base import Availability

    monkeypatch.setenv("GCBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr("gcbench.backends.node_sdk.npm_availability",
                        lambda: Availability(False, reason="no npm on PATH; install npm"))
    server = SERVERS["memory"]
    a = RealServerBackend(server).availability()
    if not install.tools_available(server).ok and "npm" not in a.reason:
        pytest.skip(a.reason)  # no node at all
    assert not a.ok and "no npm on PATH" in a.reason
    with pytest.raises(GcbenchError, match="scenario real-memory: cannot install .*no npm on PATH"):
        real_backend("memory", lambda m: None)


def _installed_or_skip(name: str) -> None:
    """Install the package as a run would (first use); skip with the reason when it cannot be installed here."""
    try:
        install.install(SERVERS[name], lambda m: None)
    except GcbenchError as e:
        pytest.skip(f"real-{name} cannot be installed here: {e}")


@pytest.mark.slow
def test_real_time_end_to_end_every_call_ok_with_both_tools(tmp_path):


    from gcbench.store import load_run

    _installed_or_skip("time")  # the first install took about 11 s here (a venv and pip install)
    import tempfile

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    fixtures_before = set(Path(tempfile.gettempdir()).glob("gcbench-real-time-*"))
    proc = run_cli("run", "-s", "real-time", "-g", "default,disabled", "--chains", "3", "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    data = load_run(folder)
    calls = data.calls
    assert len(calls) == 2 * 3 * 6 and bool(calls["ok"].all())
    assert set(calls["tool"]) == {"get_current_time", "convert_time"}
    assert {c["status"] for c in data.meta["cells"]} == {"ok"}
    meta = data.meta["environment"]["backend_runtimes"]["real-time"]
    assert meta["runtime"] == "python" and meta["real_server"]["version"] == SERVERS["time"].version
    assert [c.get("probe_attached") for c in data.meta["cells"]] == [True, True]
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before
    assert set(Path(tempfile.gettempdir()).glob("gcbench-real-time-*")) <= fixtures_before  # torn down


def test_pypi_install_runs_the_first_use_step_so_fetch_stays_offline(monkeypatch, tmp_path):
    """readabilipy's `npm install` ran inside the first fetch call of the first cell (network in the measured
    window); the install now runs the server's declared first-use step once, after pip, before the marker."""
    monkeypatch.setenv("GCBENCH_CACHE", str(tmp_path / "cache"))
    ran = []

    def fake_run(argv, what, cwd):
        ran.append(argv)
        return "[]"

    monkeypatch.setattr(install, "_run", fake_run)
    folder = install.install(SERVERS["fetch"], lambda m: None)
    pip = next(i for i, a in enumerate(ran) if "pip" in a and "install" in a)
    first_use = [i for i, a in enumerate(ran) if list(SERVERS["fetch"].post_install) == a[1:]]
    assert first_use and first_use[0] > pip and "run_npm_install" in ran[first_use[0]][-1]
    assert install.read_marker(folder)["version"] == SERVERS["fetch"].version


def test_a_server_that_cannot_start_leaves_no_fixture_and_no_helper(tmp_path, monkeypatch):
    """The cell's loopback site and folder go with the cell even when its server never started (an OSError
    at launch: no stop(), so no after_exit, would leave the site process running and registered)."""
    from gcbench.backends.base import CellContext
    from gcbench.errors import CellError
    from gcbench.gcmode import parse_gc_mode

    monkeypatch.setenv("GCBENCH_CACHE", str(tmp_path / "cache"))
    backend = RealServerBackend(SERVERS["fetch"], installer=lambda server, log: tmp_path / "no-venv")
    backend.ensure_installed(lambda m: None)
    backend.prepare(lambda m: None)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    ctx = CellContext(tmp_path / "events.jsonl", tmp_path / "stderr.log")
    with pytest.raises(CellError, match="cannot start server"):
        backend.start(parse_gc_mode("default"), load_scenario("real-fetch"), ctx)
    alive = [p for p in psutil.Process().children(recursive=True)
             if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [] and backend._cell is None
    tmp = backend._tmp
    assert tmp.is_dir()
    backend.close()
    assert not tmp.exists()
