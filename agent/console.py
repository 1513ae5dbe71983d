"""One rich console for the CLI, so progress bars and messages share a terminal."""

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> None:
    """Print a user error on stderr as one line (the terminal wraps it; a pipe or CI log keeps it whole for grep)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
