"""One rich console for the CLI, so progress bars and messages share a terminal."""

import os

from rich.console import Console

console = Console()
err_console = Console(stderr=True)
LOG_COLUMNS = 200  # a log file's width: one table row per line, as grep and a pager want it


def widen_for_logs() -> None:
    """Give the consoles LOG_COLUMNS where they write to a file or pipe: rich falls back to 80 columns there, which
    folds each row of an agent's or a listener's tables over several lines of its log. A terminal keeps its own
    width, and COLUMNS, when set, wins."""
    if "COLUMNS" in os.environ:
        return
    for c in (console, err_console):
        if not c.is_terminal:
            c.width = LOG_COLUMNS


def fail(message: str) -> None:
    """Print a user error on stderr as one line (the terminal wraps it; a pipe or CI log keeps it whole for grep)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
