"""The CLI in the docs against the parsers: every `sayna-sip` command, action and flag
named in README.md or docs/*.md exists, and every one the program has is documented."""

from __future__ import annotations

import re

import pytest

from sayna_sip.cli.main import COMMANDS
from tests.docs import markdown, sources

README = "README.md"
INVOCATION = re.compile(r"sayna-sip ([a-z][a-z-]*)((?:[ \t]+[^\s`]+)*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)")


def _readme_rows() -> dict[str, list[str]]:
    """Command -> the spans of its row in README's Commands table, each read as a call
    of that command (`dlq redrive` in the `dlq` row is `sayna-sip dlq redrive`)."""
    table = markdown.table_with(markdown.text(README), "command", "what it does")
    rows: dict[str, list[str]] = {}
    for cell in table.column("command"):
        spans = markdown.spans(cell)
        named = [s.split()[1] for s in spans if s.startswith("sayna-sip ")]
        for name in named:
            calls = [_as_call(s, name) for s in spans]
            rows.setdefault(name, []).extend(c for c in calls if c.split()[1] == name)
    return rows


def _as_call(span: str, command: str) -> str:
    if span.startswith("sayna-sip "):
        return span
    return f"sayna-sip {span}" if span.split()[0] == command else f"sayna-sip {command} {span}"


def _calls() -> list[tuple[str, str, str]]:
    """(doc, command, arguments) of every `sayna-sip ...` in a code span or block line."""
    found: list[tuple[str, str, str]] = []
    texts = {path: markdown.code_text(doc) for path, doc in markdown.all_docs().items()}
    texts[f"{README} (Commands table)"] = [c for cs in _readme_rows().values() for c in cs]
    for path, snippets in texts.items():
        for snippet in snippets:
            for part in re.split(r"&&|;|\s#\s", snippet):  # one call per shell command
                for m in INVOCATION.finditer(part):
                    found.append((path, m.group(1), m.group(2)))
    return found


def _actions(command: str) -> list[str]:
    return sources.actions([command])


def _program_flags(command: str, action: str | None) -> set[str]:
    flags = sources.flags([command])
    return flags | sources.flags([command, action]) if action else flags


def test_the_readme_lists_every_command_and_only_real_ones() -> None:
    documented = set(_readme_rows())
    assert not set(COMMANDS) - documented, (
        f"add {sorted(set(COMMANDS) - documented)} to the Commands table of {README}"
    )
    assert not documented - set(COMMANDS), (
        f"{README} lists commands `sayna-sip` does not have: {sorted(documented - set(COMMANDS))}"
    )


def test_every_documented_call_names_a_real_command_action_and_flags() -> None:
    for path, command, args in _calls():
        assert command in COMMANDS, f"{path}: `sayna-sip {command}` is no command"
        words = args.split()
        actions = _actions(command)
        chosen = None
        bare = [w for w in words if re.fullmatch(r"[a-z][a-z|-]*", w)]
        if actions and bare:  # the first bare word is the action (options may come first)
            for action in bare[0].split("|"):
                assert action in actions, (
                    f"{path}: `sayna-sip {command} {action}`: the actions are {actions}"
                )
            chosen = bare[0].split("|")[0]
        unknown = set(FLAG.findall(args)) - _program_flags(command, chosen)
        assert not unknown, f"{path}: `sayna-sip {command}{args}`: no such flag {sorted(unknown)}"


def _documented_with(command: str) -> str:
    """Every doc unit (paragraph, list item, table row, code line) that names the command."""
    units = [u for doc in markdown.all_docs().values() for u in markdown.units(doc)]
    return "\n".join(u for u in units if re.search(rf"sayna-sip {command}\b", u))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_action_and_flag_of_a_command_is_documented(command: str) -> None:
    text = _documented_with(command)
    for action in _actions(command):
        assert re.search(rf"(?<![\w-]){action}(?![\w-])", text), (
            f"document `sayna-sip {command} {action}` (README.md's Commands table or docs/)"
        )
    flags = sources.flags([command])
    for action in _actions(command):
        flags |= sources.flags([command, action])
    missing = {f for f in flags if not re.search(rf"{f}(?![\w-])", text)}
    assert not missing, f"document {sorted(missing)} of `sayna-sip {command}`"
