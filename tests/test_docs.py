"""The README and docs/ stay true to the code: settings, links, code blocks, commands, targets."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from llmtap.cli.main import build_parser
from llmtap.consumers.runtime.config import variables as worker_variables
from llmtap.settings import VARIABLES

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
CONFIGURATION = (DOCS / "configuration.md").read_text()

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
SHELL_LANGS = ("sh", "bash", "console", "shell")
SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")", ">", ">>", "<"}


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


def _id(value: object) -> str | None:
    """Readable test ids: a page by its path, a line or number as itself, code by position."""
    if isinstance(value, Path):
        return _name(value)
    if isinstance(value, int) or (isinstance(value, str) and "\n" not in value):
        return str(value)
    return None


def _blocks(path: Path) -> list[tuple[str, str]]:
    """Return (language, body) of every fenced block of a page."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(path.read_text())]


def _prose(text: str) -> str:
    """The page without fenced blocks and inline code, where links live."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: rendered text, lower case, punctuation dropped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of a page, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return frozenset(out)


def _links() -> Iterator[tuple[Path, str]]:
    for page in PAGES:
        for match in LINK.finditer(_prose(page.read_text())):
            target = match.group(1)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                yield page, target


def _shell_lines() -> Iterator[tuple[Path, str]]:
    for page in PAGES:
        for lang, body in _blocks(page):
            if lang not in SHELL_LANGS:
                continue
            for line in body.splitlines():
                command = line.strip()
                if lang == "console":
                    if not command.startswith("$ "):
                        continue  # output, not a command
                    command = command[2:]
                command = command.removeprefix("$ ")
                if command and not command.startswith("#"):
                    yield page, command


def _commands(line: str) -> list[list[str]]:
    """Split a shell line into simple commands, each without leading VAR=value words."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in SEPARATORS or set(token) <= set("|&;()<>"):
            commands.append([])
        elif commands[-1] or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", token):
            commands[-1].append(token)
    return [words for words in commands if words]


def _llmtap_args(words: list[str]) -> list[str] | None:
    """The arguments of an `llmtap` invocation in one simple command, or None if it runs none."""
    if Path(words[0]).name == "llmtap":
        return words[1:]
    if words[0] == "docker" and "llmtap" in words:
        return words[words.index("llmtap") + 1 :]
    return None


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:  # type: ignore[type-arg]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def unknown_subcommand(args: list[str]) -> str | None:
    """Walk the parser's subcommands along ``args``; describe the first wrong one, or None."""
    parser = build_parser()
    path = ["llmtap"]
    tokens = iter(args)
    while (sub := _subparsers(parser)) is not None:
        for token in tokens:
            if not token.startswith("-"):
                break
            action = parser._option_string_actions.get(token.split("=")[0])
            if action is None:
                return f"{' '.join(path)} has no option {token}"
            if action.nargs is None and "=" not in token:
                next(tokens, None)
            if isinstance(action, argparse._HelpAction):
                return None
        else:
            return None if not sub.required else f"{' '.join(path)} needs a subcommand"
        if token not in sub.choices:
            return f"{' '.join(path)} has no subcommand {token!r}"
        path.append(token)
        parser = sub.choices[token]
    return None


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*:(?!=)", text, re.MULTILINE))


def _documented_default(name: str) -> str:
    match = re.search(rf"^\| `{name}` \| (.+?) \|", CONFIGURATION, re.MULTILINE)
    assert match, f"{name} is missing from the configuration table in docs/configuration.md"
    return match.group(1).strip("`")


def _shown(default: object) -> str:
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


@pytest.mark.parametrize("var", VARIABLES, ids=[v.env for v in VARIABLES])
def test_every_producer_setting_is_documented_with_its_default(var: object) -> None:
    """Each producer variable appears in the configuration table with its real default."""
    assert _documented_default(var.env) == _shown(var.default)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("env", "attr", "default"), worker_variables())
def test_every_worker_setting_is_documented_with_its_default(
    env: str, attr: str, default: object
) -> None:
    """Each worker variable appears in the configuration table with its real default."""
    assert _documented_default(env) == _shown(default)


def test_readme_gives_the_two_commands() -> None:
    """The README opens with `make demo` and `make test`."""
    head = README.read_text()[:1500]
    assert "make demo" in head and "make test" in head


def test_readme_is_short() -> None:
    """The README stays at most 150 lines; the details live in docs/."""
    assert len(README.read_text().splitlines()) <= 150


def test_readme_links_every_docs_page() -> None:
    """Every page under docs/ is reachable from the README."""
    linked = {(README.parent / target.split("#")[0]).resolve() for _, target in _links()}
    missing = [_name(page) for page in PAGES[1:] if page.resolve() not in linked]
    assert not missing, f"README.md links none of {missing}"


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("The wire format (v1)", "the-wire-format-v1"),
        (
            "Cost and usage (cost worker, exact, from rollups)",
            "cost-and-usage-cost-worker-exact-from-rollups",
        ),
        ("`llmtap.tools` and the CLI", "llmtaptools-and-the-cli"),
        ("Webhook schema v1", "webhook-schema-v1"),
    ],
)
def test_slug_follows_github(heading: str, expected: str) -> None:
    """Heading anchors are computed the way GitHub renders them."""
    assert slug(heading) == expected


@pytest.mark.parametrize(("page", "target"), list(_links()), ids=_id)
def test_every_relative_link_resolves(page: Path, target: str) -> None:
    """A relative link names an existing file and, with #anchor, one of its headings."""
    file_part, _, anchor = target.partition("#")
    dest = (page.parent / file_part).resolve() if file_part else page
    assert dest.exists(), f"{_name(page)}: {target} points at a missing file"
    if anchor:
        assert dest.suffix == ".md", f"{_name(page)}: {target}: anchor on a non-Markdown file"
        assert anchor in anchors(dest), f"{_name(page)}: no heading #{anchor} in {dest.name}"


@pytest.mark.parametrize(
    ("page", "index", "source"),
    [
        (page, i, body)
        for page in PAGES
        for i, (lang, body) in enumerate(_blocks(page))
        if lang == "python"
    ],
    ids=_id,
)
def test_every_python_block_compiles(page: Path, index: int, source: str) -> None:
    """Each ```python block is valid Python."""
    compile(source, f"{_name(page)}[block {index}]", "exec")


@pytest.mark.parametrize(("page", "line"), list(_shell_lines()), ids=_id)
def test_every_llmtap_command_names_a_real_subcommand(page: Path, line: str) -> None:
    """Each `llmtap ...` in a shell block walks the real argparse subcommands."""
    for words in _commands(line):
        args = _llmtap_args(words)
        if args is not None:
            problem = unknown_subcommand(args)
            assert problem is None, f"{_name(page)}: {line!r}: {problem}"


@pytest.mark.parametrize(("page", "line"), list(_shell_lines()), ids=_id)
def test_every_make_line_names_a_real_target(page: Path, line: str) -> None:
    """Each `make X` in a shell block names a target of the Makefile."""
    for words in _commands(line):
        if words[0] != "make":
            continue
        targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        unknown = set(targets) - make_targets()
        assert not unknown, f"{_name(page)}: {line!r}: no Makefile target {sorted(unknown)}"


def test_the_checks_catch_what_they_should() -> None:
    """The checkers reject a wrong subcommand, a wrong nested one and an unknown target."""
    assert unknown_subcommand(["worker", "health", "cost"]) is None
    assert unknown_subcommand(["alerts", "silence", "-m", "rule=x"]) is None
    assert unknown_subcommand(["-v", "cost", "--hours", "24"]) is None
    assert unknown_subcommand(["--help"]) is None
    assert unknown_subcommand(["costs"]) is not None
    assert unknown_subcommand(["worker", "healthy"]) is not None
    assert unknown_subcommand(["alerts"]) is not None
    assert {"demo", "test", "lint", "bench"} <= make_targets()
    assert _commands("FOO=1 llmtap up && make test | tee x") == [
        ["llmtap", "up"],
        ["make", "test"],
        ["tee", "x"],
    ]
