"""Code blocks of docs/*.md and the test markers on the line before them (see tests/test_docs.py)."""

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MARKER = re.compile(r"<!--\s*test:\s*(skip|slow|background)\s*(?::\s*(.*?))?\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")
CLI = re.compile(r"^(\.venv/bin/)?cityagent(\s|$)")  # a command this test runs


def shell_commands(code: str) -> list[str]:
    """Logical shell lines (continuations joined), comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    lines = (re.sub(r"\s+#.*$", "", ln).strip() for ln in joined.splitlines())
    return [ln for ln in lines if ln and not ln.startswith("#")]


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None  # skip | slow | background
    reason: str | None

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"

    def commands(self) -> list[str]:
        return shell_commands(self.code)

    @property
    def is_cli(self) -> bool:
        cmds = self.commands()
        return self.lang == "bash" and bool(cmds) and all(CLI.match(c) for c in cmds)

    @property
    def runs(self) -> bool:
        return self.marker != "skip" and (self.lang == "python" or self.is_cli)


def parse_blocks(text: str, page: str) -> list[Block]:
    """The fenced code blocks of a markdown text, with the test marker of the line before each."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        prev = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
        mark = MARKER.search(prev)
        code = "\n".join(lines[i + 1 : j]) + "\n"
        out.append(Block(page, i + 1, m.group(1), code, mark and mark.group(1), mark and mark.group(2)))
        i = j + 1
    return out


def blocks(page: Path) -> list[Block]:
    return parse_blocks(page.read_text(), page.name)
