"""A backend whose server runs the hiccup meter (PROTOCOL.md, "Hiccup meter"): the wrapped backend with the
meter's settings added to its server's environment. `base_backend()` is the backend it wraps."""

from __future__ import annotations

import dataclasses

from gcbench.backends.base import Availability, Backend, CellContext, LaunchSpec, SubprocessBackend
from gcbench.gcmode import GcMode
from gcbench.scenario import Scenario

DEFAULT_FLOOR_US = 200  # above the ~60-80 us a sleep overshoots by on an idle Linux machine


def meter_env(hiccup_us: int, floor_us: int = DEFAULT_FLOOR_US) -> dict[str, str]:
    return {"GCBENCH_HICCUP_US": str(int(hiccup_us)), "GCBENCH_HICCUP_FLOOR_US": str(int(floor_us))}


class Metered(SubprocessBackend):
    """A subprocess backend whose server runs the hiccup meter; everything else is the wrapped backend's."""

    def __init__(self, inner: SubprocessBackend, hiccup_us: int, floor_us: int = DEFAULT_FLOOR_US,
                 suffix: str = "") -> None:
        self.inner = inner
        self.hiccup_us = hiccup_us
        self.floor_us = floor_us
        self.name = inner.name + suffix
        self.runtime = inner.runtime
        self.description = inner.description + (" (with the hiccup meter)" if suffix else "")
        self.in_process = inner.in_process
        self.in_default_run = inner.in_default_run
        self.tool = inner.tool

    def __getattr__(self, name: str):  # anything else a caller may ask the wrapped backend
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def availability(self) -> Availability:
        return self.inner.availability()

    def unsupported_reason(self, mode: GcMode) -> str | None:
        return self.inner.unsupported_reason(mode)

    def prepare(self, log) -> None:
        self.inner.prepare(log)

    def tool_arguments(self, scenario: Scenario) -> dict:
        return self.inner.tool_arguments(scenario)

    def runtime_metadata(self) -> dict:
        return self.inner.runtime_metadata()

    def before_measure(self, handle, mode: GcMode, ctx: CellContext) -> dict:
        return self.inner.before_measure(handle, mode, ctx)

    def finish_events(self, events: list[dict], stats: dict, ctx: CellContext) -> tuple[list[dict], dict]:
        return self.inner.finish_events(events, stats, ctx)

    def base_backend(self) -> Backend:
        return self.inner

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        spec = self.inner.launch_spec(mode, scenario, ctx)
        return dataclasses.replace(spec, env={**spec.env, **meter_env(self.hiccup_us, self.floor_us)})
