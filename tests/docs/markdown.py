"""The docs side of the docs tests: README.md, docs/*.md and .env.example, read as an
operator reads them (tables, code spans, code blocks)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SPAN = re.compile(r"`([^`\n]+(?:\n[^`\n]+)?)`")  # a span may wrap onto a second line


def text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def all_docs() -> dict[str, str]:
    """Relative path -> text of every operator-facing markdown file."""
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in DOC_FILES}


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]

    def column(self, name: str) -> list[str]:
        i = self.header.index(name)
        return [row[i] for row in self.rows]


def _cells(line: str) -> list[str]:
    body = line.strip().strip("|").replace(r"\|", "\0")
    return [c.strip().replace("\0", "|") for c in body.split("|")]


def tables(doc: str) -> list[Table]:
    """Every pipe table of a markdown text."""
    found: list[Table] = []
    lines = doc.splitlines()
    i = 0
    while i < len(lines) - 1:
        if lines[i].startswith("|") and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip()):
            header = _cells(lines[i])
            rows: list[list[str]] = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            found.append(Table(header, rows))
        else:
            i += 1
    return found


def table_with(doc: str, *columns: str) -> Table:
    for table in tables(doc):
        if all(c in table.header for c in columns):
            return table
    raise AssertionError(f"no table with columns {columns}")


def spans(cell: str) -> list[str]:
    """The `code spans` of a cell or a paragraph."""
    return SPAN.findall(cell)


def code_text(doc: str) -> list[str]:
    """Every code span and every line of every fenced or indented code block."""
    out = list(SPAN.findall(re.sub(r"```.*?```", "", doc, flags=re.S)))
    for block in re.findall(r"```[^\n]*\n(.*?)```", doc, flags=re.S):
        out.extend(block.splitlines())
    out.extend(m for m in re.findall(r"^    (\S.*)$", doc, flags=re.M))
    return out


def env_example() -> dict[str, str]:
    """Variables of .env.example (name -> value as written)."""
    out: dict[str, str] = {}
    for line in text(".env.example").splitlines():
        if m := re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line):
            out[m.group(1)] = m.group(2)
    return out


def units(doc: str) -> list[str]:
    """The pieces a reader takes as one statement: paragraphs, list items, table rows
    and the lines of code blocks."""
    out: list[str] = []
    prose = re.sub(r"```[^\n]*\n(.*?)```", lambda m: _lines_apart(m.group(1)), doc, flags=re.S)
    for block in re.split(r"\n\s*\n", prose):
        lines = block.strip("\n").splitlines()
        if lines and all(line.startswith("|") for line in lines):
            out.extend(lines)
        else:
            out.extend(re.split(r"\n(?=\s*(?:[-*]|\d+\.) )", block))
    return [u for u in out if u.strip()]


def _lines_apart(code: str) -> str:
    return "\n\n" + "\n\n".join(code.splitlines()) + "\n\n"
