"""One rich console for the CLI, so progress bars and messages share a terminal."""

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> None:
    """Print a user error on stderr."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
