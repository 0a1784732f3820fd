"""The study's real-server section (gcbench study --real DIR): registry servers run from their shipped real-*
scenarios under their runtime's GC modes (`gcbench advise -s real-NAME --runs-dir DIR`), each set against its
own default with advise's decision rule. Numbers here; the section's wording is built in `section`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gcbench.advise import BASELINE, DEFAULT_MODE, BackendAdvice, ModeResult, Rule, advise
from gcbench.errors import GcbenchError
from gcbench.format import fmt_ci, fmt_ms, fmt_share, fmt_signed
from gcbench.report.document import Section, Table


@dataclass(frozen=True)
class RealServer:
    scenario: str  # the shipped scenario, e.g. real-memory
    package: str  # package@version as installed
    registry: str
    runtime: str
    tools: int  # distinct tools its trace calls
    run: Path
    advice: BackendAdvice

    @property
    def default(self) -> ModeResult:
        return self.advice.result(DEFAULT_MODE)

    def best(self) -> ModeResult | None:
        """The GC-on setting with the largest measured cut (whatever the rule says of it); None: default only."""
        others = [r for r in self.advice.results if r.verdict != BASELINE and not r.is_off]
        return max(others, key=lambda r: r.cut_ms) if others else None

    def off(self) -> ModeResult | None:
        return next((r for r in self.advice.results if r.is_off), None)


DEFAULT_RULE = Rule()  # advise's defaults


def build_real(folder: str | Path, rule: Rule = DEFAULT_RULE) -> list[RealServer]:
    """Every run folder under `folder` (or `folder` itself) measured from a real-* scenario, in name order."""
    from gcbench.store import load_run

    folder = Path(folder)
    runs = [folder] if (folder / "run.json").is_file() else sorted(p.parent for p in folder.glob("*/run.json"))
    out = []
    for path in runs:
        data = load_run(path)
        real = ((data.meta.get("scenario") or {}).get("server") or {}).get("real")
        if not real or not len(data.calls):
            continue
        backend = str(data.calls["backend"].iloc[0])
        meta = ((data.meta.get("environment") or {}).get("backend_runtimes") or {}).get(backend) or {}
        server = meta.get("real_server") or {}
        advice = advise(data.calls, data.meta.get("cells", []), rule, run=str(path)).backends[0]
        tools = int(data.calls["tool"].nunique()) if "tool" in data.calls else 1
        out.append(RealServer(data.meta.get("scenario", {}).get("name", real), f"{server.get('package', real)}@"
                              f"{server.get('version', '?')}", server.get("registry", "?"), advice.runtime, tools,
                              path, advice))
    if not out:
        raise GcbenchError(f"--real {folder}: no run folder of a real-* scenario in it (measure one with "
                           f"`gcbench advise -s real-NAME --runs-dir {folder}`)")
    return out


HEADERS = ["server", "runtime", "tools", "chains per mode", "default: GC dead time per chain", "best setting",
           "its cut per chain (95% CI)", "its peak RSS vs default", "GC off: dead time it removes (RSS vs default)",
           "advise says"]


def _row(s: RealServer) -> list[str]:
    d, best, off = s.default, s.best(), s.off()
    return [f"{s.scenario} ({s.package}, {s.registry})", s.runtime, str(s.tools), str(d.chains),
            f"{fmt_ms(d.dead_mean_ms)} ms",
            best.gc_mode if best else "-",
            f"{fmt_signed(best.cut_ms)} ms {fmt_ci(best.cut_lo_ms, best.cut_hi_ms, fmt_ms)}" if best else "-",
            fmt_signed(best.rss_increase, fmt_share) if best and best.rss_increase == best.rss_increase else "-",
            f"{fmt_ms(off.cut_ms)} ms ({fmt_signed(off.rss_increase, fmt_share)})"
            if off and off.rss_increase == off.rss_increase else (f"{fmt_ms(off.cut_ms)} ms" if off else "-"),
            f"use {s.advice.recommended}" if s.advice.recommended else "no change worth making"]


def section(servers: list[RealServer], number: str) -> Section:
    helped = [s for s in servers if s.advice.recommended]
    busiest = max(servers, key=lambda s: s.default.dead_mean_ms)
    text = (f"{len(servers)} MCP servers from the registries, installed by package name and driven by their shipped "
            "scenario's trace (several tools, changing arguments, an offline fixture), each under its runtime's GC "
            "modes in one run and set against its own default cell (the rule of `gcbench advise`: the 95% bootstrap "
            "CI of the cut excludes zero, the cut is at least 0.1 ms and 10%, peak RSS within +50%). "
            f"The most GC dead time per chain at default: {busiest.scenario}, {fmt_ms(busiest.default.dead_mean_ms)} "
            "ms. " + (f"A setting worth making: {', '.join(f'{s.scenario} ({s.advice.recommended})' for s in helped)}."
                      if helped else "No setting passed the rule on any of them: no change worth making."))
    table = Table("real-servers", "Real servers: default against their runtime's best setting",
                  headers=HEADERS, rows=[_row(s) for s in servers], numeric={2, 3, 4},
                  caption="The best setting is the GC-on mode with the largest mean cut, whether or not it passes the rule. "
                          "GC off (disabled) removes all GC dead time; its cost shows in peak RSS.")
    return Section(number=number, key="real-servers", title="Real servers from the registries", items=[text, table])
