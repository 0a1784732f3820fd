"""The two kinds of failure the CLI distinguishes (exit codes are mapped in cli.py only)."""


def printable(text: str) -> str:
    """text with every control or format character escaped (\\x1b, \\r, \\n, \\u202e): what a server wrote
    can then be echoed on a terminal without moving the cursor, erasing a line or reordering text."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class GcbenchError(Exception):
    """Bad input or an unusable environment: one clear line for the user, exit code 2."""


class CellError(Exception):
    """One measurement cell failed (server crashed, hung, or broke the protocol); the run goes on.

    The message often quotes the server (its stderr, a bad line, an error text): it is escaped here, once,
    so every place that prints or stores a cell's reason gets it safe for a terminal.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(printable(message))
