"""The command lines the docs show are the command line the package has.

Two checks over README.md and every page of docs/:

- every flag a page names for a command (in a ```console or ```bash block
  after ``mobilenet COMMAND``, or in a code span such as `mobilenet export
  --int8`) is an option of that command's parser, and a flag alone in a code
  span (`--verify`) is an option of some command (prose moves between
  commands too freely to pin it to one), unless the page last named a
  ``python SCRIPT.py``, whose flag it then is;
- every transcript of ``mobilenet ... --help`` and every quoted error line
  (``mobilenet COMMAND: error: ...``) in a ```console block is what the
  command prints today, run in-process through `mobilenet.cli.main`. Help is
  compared with argparse's line wrapping undone (whitespace runs as one
  space), at COLUMNS=100; an error line quoted anywhere else is refused, so
  that every quoted error is checked.

Parsing and help only: nothing here builds a model.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mobilenet.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Fenced blocks whose lines are commands (a console block's start with `$ `).
COMMAND_BLOCKS = ("console", "bash", "sh", "shell")
_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)*)`(?!`)")
_COMMAND = re.compile(r"\bmobilenet\s+([a-z]+)\b")
_ERROR_LINE = re.compile(r"mobilenet [a-z]+: error:")
_SCRIPT = re.compile(r"\bpython3? (?:-m )?[\w/.-]+\.py\b")
#: The command a bare flag is read against: any of them.
ANY = "*"


def _subparsers() -> dict[str, object]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return dict(action.choices)


SUBPARSERS = _subparsers()


def _options(command: str) -> set[str]:
    return {option for action in SUBPARSERS[command]._actions for option in action.option_strings}


def _relative(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _logical_lines(code: str) -> list[str]:
    """The lines of a code block, with backslash continuations joined."""
    return code.replace("\\\n", " ").splitlines()


def _command_flags(line: str) -> tuple[str, list[str]] | None:
    """(command, flags) of a ``mobilenet COMMAND ...`` shell line, or None."""
    match = _COMMAND.search(line)
    if match is None or match.group(1) not in SUBPARSERS:
        return None
    rest = line[match.end():]
    try:
        words = shlex.split(rest, comments=True)
    except ValueError:
        words = rest.split()
    flags = []
    for word in words:
        if word in ("|", "&&", ";", ">", "2>&1"):
            break
        if word.startswith("-") and not re.fullmatch(r"-[\d.]+(/[\d.]+)?", word):
            flags.append(word.split("=", 1)[0])
    return match.group(1), flags


def flags_named(text: str) -> list[tuple[str, str, str]]:
    """Every (command, flag, where) a page names; `where` quotes the place."""
    named = []
    # Code blocks, and the prose between them, in page order: a bare flag in a
    # code span belongs to the command the page last named.
    command = None
    position = 0
    for fence in [*_FENCE.finditer(text), None]:
        prose = text[position:fence.start() if fence else len(text)]
        for span in _CODE_SPAN.finditer(prose):
            code = " ".join(span.group(1).split())
            found = _command_flags(code)
            if found is not None:
                command = found[0]
                named += [(command, flag, f"`{code}`") for flag in found[1]]
            elif command is not None and re.fullmatch(r"--[a-z][\w-]*(?:[ =].*)?", code):
                named.append((ANY, code.split()[0].split("=")[0], f"`{code}`"))
            command = _last_named(code, command)
        command = _last_named(_CODE_SPAN.sub("", prose), command)
        if fence is None:
            break
        position = fence.end()
        language = fence.group(1).split()[0] if fence.group(1).split() else ""
        if language in COMMAND_BLOCKS:
            for line in _logical_lines(fence.group(2)):
                if language == "console" and not line.startswith("$ "):
                    continue
                found = _command_flags(line)
                if found is not None:
                    named += [(found[0], flag, line.strip()) for flag in found[1]]
                command = _last_named(line, command)
    return named


def _last_named(text: str, command: str | None) -> str | None:
    """The command (a `mobilenet` one, or None for a script) named last in `text`."""
    mentions = [(m.start(), m.group(1)) for m in _COMMAND.finditer(text) if m.group(1) in SUBPARSERS]
    mentions += [(m.start(), None) for m in _SCRIPT.finditer(text)]
    return max(mentions, key=lambda mention: mention[0])[1] if mentions else command


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_every_flag_a_page_names_exists(page):
    every = set().union(*(_options(command) for command in SUBPARSERS))
    wrong = [f"{command} {flag}  (in {where})" for command, flag, where in flags_named(page.read_text())
             if flag not in (every if command == ANY else _options(command))]
    assert not wrong, f"{_relative(page)} names flags that `mobilenet` does not have:\n" + "\n".join(wrong)


def transcripts(text: str) -> list[tuple[list[str], str]]:
    """(argv, quoted output) of each ``$ mobilenet ...`` line of a ```console block."""
    found = []
    for fence in _FENCE.finditer(text):
        if fence.group(1).split()[:1] != ["console"]:
            continue
        argv, output = None, []
        for line in [*_logical_lines(fence.group(2)), "$ "]:
            if line.startswith("$ "):
                if argv:
                    found.append((argv, "\n".join(output)))
                words = shlex.split(line[2:], comments=True)
                argv = words[1:] if words[:1] == ["mobilenet"] else None
                output = []
            else:
                output.append(line)
    return found


def _checked(argv: list[str], output: str) -> bool:
    """Whether a transcript is one this test runs: help, or an error line."""
    return "--help" in argv or "-h" in argv or _ERROR_LINE.search(output) is not None


def _cases() -> list:
    return [pytest.param(_relative(page), argv, output, id=f"{_relative(page)}: {' '.join(argv)}")
            for page in PAGES for argv, output in transcripts(page.read_text())
            if _checked(argv, output)]


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(("page", "argv", "quoted"), _cases())
def test_quoted_help_and_errors_are_what_the_cli_prints(page, argv, quoted, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    try:
        status = main(argv)
    except SystemExit as exit:
        status = exit.code
    printed = capsys.readouterr()
    if "--help" in argv or "-h" in argv:
        assert status == 0
        assert _words(quoted) == _words(printed.out), (
            f"{page}: the transcript of `mobilenet {' '.join(argv)}` is out of date; today:\n"
            + printed.out)
    else:
        assert status == 2
        assert _words(quoted) == _words(printed.err), (
            f"{page}: the error of `mobilenet {' '.join(argv)}` is out of date; today:\n"
            + printed.err)


def test_the_pages_quote_help_and_errors():
    """Guards against a parser that finds nothing: some transcripts are checked."""
    cases = [case.values for case in _cases()]
    assert any("--help" in argv for _, argv, _ in cases)
    assert any("error:" in quoted for _, _, quoted in cases)


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_error_lines_are_quoted_only_in_checked_transcripts(page):
    text = page.read_text()
    outside = _FENCE.sub(
        lambda fence: "" if fence.group(1).split()[:1] == ["console"] else fence.group(0), text)
    assert not _ERROR_LINE.search(" ".join(outside.split())), (
        f"{_relative(page)} quotes an error line outside a ```console transcript, where "
        "nothing checks it: quote it after the `$ mobilenet ...` line that prints it")


def test_flags_are_found_where_pages_name_them():
    """The extraction itself, on a made-up page."""
    page = (
        "Run `mobilenet export --int8` then `--verify`.\n\n"
        "```console\n$ mobilenet predict m.keras a.jpg \\\n    --top 3 --offset -1\nout --nope\n```\n\n"
        "```bash\nmobilenet train --epochs=2  # --not-a-flag\n```\n"
        "Then `python benchmarks/speed.py --only ours`, `--only`.\n"
    )
    assert flags_named(page) == [
        ("export", "--int8", "`mobilenet export --int8`"),
        (ANY, "--verify", "`--verify`"),
        ("predict", "--top", "$ mobilenet predict m.keras a.jpg      --top 3 --offset -1"),
        ("predict", "--offset", "$ mobilenet predict m.keras a.jpg      --top 3 --offset -1"),
        ("train", "--epochs", "mobilenet train --epochs=2  # --not-a-flag"),
    ]
