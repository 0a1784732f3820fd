"""The two kinds of failure the CLI distinguishes (exit codes are mapped in cli.py only)."""


class GcbenchError(Exception):
    """Bad input or an unusable environment: one clear line for the user, exit code 2."""


class CellError(Exception):
    """One measurement cell failed (server crashed, hung, or broke the protocol); the run goes on."""
