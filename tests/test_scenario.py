import pytest
from click.testing import CliRunner

from gcbench.cli import main
from gcbench.errors import GcbenchError
from gcbench.scenario import list_builtin, load_scenario

from .conftest import run_cli


@pytest.mark.parametrize(
    "body, field, problem",
    [
        ("[chain]\ncalls = 5\nbogus = 1\n", "chain.bogus", "unknown field"),
        ("[chain]\ncalls = \"fifty\"\n", "chain.calls", "expected an integer, got a string"),
        ("[chain]\nchains = -3\n", "chain.chains", "expected an integer >= 1, got -3"),
        ("[work]\nalloc_objects = -1\n", "work.alloc_objects", "non-negative integer"),
        ("[work]\ncyclic_fraction = 1.5\n", "work.cyclic_fraction", "from 0 to 1"),
        ("[work]\nalloc_objects = 99999999999\n", "work.alloc_objects", "above the cap"),
        ("[work]\nretain_objects = 10\n", "work.retain_cap", "required"),
        ("chain = 3\n", "chain", "expected a table"),
        ("[chain]\nthink_ms = { dist = \"pareto\", mean = 3 }\n", "chain.think_ms.dist", "unknown distribution"),
        ("surprise = true\n", "surprise", "unknown field"),
    ],
)
def test_invalid_scenarios_name_file_and_field(write_scenario, body, field, problem):
    path = write_scenario(body, "bad.toml")
    with pytest.raises(GcbenchError) as exc:
        load_scenario(str(path))
    msg = str(exc.value)
    assert str(path) in msg and f"'{field}'" in msg and problem in msg


def test_invalid_toml_and_binary_garbage(write_scenario, tmp_path):
    with pytest.raises(GcbenchError, match="invalid TOML"):
        load_scenario(str(write_scenario("[chain\ncalls=1", "broken.toml")))
    garbage = tmp_path / "garbage.toml"
    garbage.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(GcbenchError, match="not a UTF-8"):
        load_scenario(str(garbage))


def test_builtin_scenarios_are_valid_and_described():
    names = dict(list_builtin())
    assert {"default", "big-heap", "no-alloc"} <= set(names)
    assert "gcbench sweep claim-check" in names["claim-check"]
    assert "gcbench sweep load" in names["load"]
    sweeps = {name for name, text in names.items() if "[a sweep: gcbench sweep" in text}
    assert {"claim-check", "claim-check-v2", "load"} <= sweeps
    for name in set(names) - sweeps:
        sc = load_scenario(name)
        # a real server's scenario replays its trace (tests/test_real_servers.py)
        assert sc.description and sc.chain.calls == (len(sc.trace) if sc.server.real else 50)
    assert load_scenario("no-alloc").work.alloc_objects == 0
    assert load_scenario("big-heap").server.heap_objects >= 300_000


def test_think_distributions_parse(write_scenario):
    sc = load_scenario(str(write_scenario('[chain]\nthink_ms = { dist = "exponential", mean = 4 }\n')))
    assert sc.chain.think.dist == "exponential" and sc.chain.think.ms == 4.0
    sc = load_scenario(str(write_scenario("[chain]\nthink_ms = 2.5\n")))
    assert sc.chain.think.dist == "fixed" and sc.chain.think.ms == 2.5


def test_cli_bad_scenario_is_one_line_exit_2(write_scenario):
    path = write_scenario("[chain]\nchains = -3\n", "neg.toml")
    result = CliRunner().invoke(main, ["run", "--scenario", str(path)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: ") and "chain.chains" in lines[0] and str(path) in lines[0]


def test_cli_bad_scenario_in_a_real_process_has_no_traceback(write_scenario):
    path = write_scenario("[work]\npayload_bytes = \"big\"\n", "typo.toml")
    proc = run_cli("run", "--scenario", str(path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "work.payload_bytes" in proc.stderr


def test_unknown_scenario_backend_and_gc_mode_list_the_valid_ones():
    r = CliRunner().invoke(main, ["run", "--scenario", "nope"])
    assert r.exit_code == 2 and "default" in r.output and "big-heap" in r.output
    r = CliRunner().invoke(main, ["run", "--backend", "cobol"])
    assert r.exit_code == 2 and "python" in r.output
    r = CliRunner().invoke(main, ["run", "--gc-mode", "sometimes"])
    assert r.exit_code == 2 and "freeze" in r.output


def test_a_folder_named_like_a_builtin_scenario_does_not_hide_it(tmp_path, monkeypatch):
    """A sweep folder `claim-check-v2` in the current directory: the name still means the built-in sweep file
    (the old code took the folder for a path and said 'scenario file not found')."""
    from gcbench.scenario import resolve_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()
    assert load_scenario("default").name == "default"
    assert resolve_path("default").parent.name == "scenarios"
