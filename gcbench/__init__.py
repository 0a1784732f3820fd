"""gcbench: measure what garbage-collection pauses really cost an AI agent's chain of MCP tool calls."""

__version__ = "0.1.0"


def load(path):
    """Load a run folder: returns a RunData with .meta (dict), .calls and .gc_events (pandas DataFrames)."""
    from gcbench.store import load_run

    return load_run(path)


__all__ = ["__version__", "load"]
