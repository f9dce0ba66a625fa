"""A man page (roff, man(7) macros) for one program, rendered from kahooks.hooks.manual's Program."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from kahooks import __version__
from kahooks.checks import PROGRAM_PREFIX, kinds

if TYPE_CHECKING:
    from kahooks.hooks.manual import Opt, Program

SEE_ALSO = ["keepalived(8)", "keepalived.conf(5)"]


def escape(text: str) -> str:
    """Text safe in a roff line: backslashes doubled, minus signs made minus signs, no leading dot."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def _option(opt: Opt) -> list[str]:
    if opt.positional:
        head = f"\\fI{escape(opt.metavar or '')}\\fR"
    else:
        head = ", ".join(f"\\fB{escape(name)}\\fR" for name in opt.names)
        if opt.metavar:
            head += f" \\fI{escape(opt.metavar)}\\fR"
    body = opt.help + (f" (default: {opt.default})" if opt.default else "")
    if opt.choices:
        body += f" One of: {', '.join(opt.choices)}."
    return [".TP", head, escape(body) if body else "\\&"]


def _synopsis(name: str, page: Program) -> list[str]:
    words = [f"\\fB{escape(name)}\\fR"]
    if page.flags:
        words.append("[\\fIoptions\\fR]")
    if page.commands:
        words.append("\\fICOMMAND\\fR [\\fIARGS\\fR]")
    for opt in page.positionals:
        word = f"\\fI{escape(opt.metavar or '')}\\fR" + ("..." if opt.repeat else "")
        words.append(word)
    return [".PP", " ".join(words)]


def _commands(prefix: str, page: Program) -> list[str]:
    lines = []
    for command in page.commands:
        name = f"{prefix} {command.name}"
        lines += [".SS", escape(f"{name}"), *_synopsis(name, command), ".PP", escape(command.summary)]
        for paragraph in command.description:
            lines += [".PP", escape(paragraph)]
        for opt in command.options:
            lines += _option(opt)
        lines += _commands(name, command)
    return lines


def render(page: Program, bindir: str = "/usr/bin") -> str:
    from kahooks.hooks.manual import FILES

    stamp = os.environ.get("SOURCE_DATE_EPOCH")  # reproducible builds: the changelog's date, never now
    date = time.strftime("%Y-%m-%d", time.gmtime(int(stamp))) if stamp and stamp.isdigit() else ""
    lines = [f'.TH {escape(page.name.upper())} 1 "{date}" "kahooks {__version__}" "kahooks"',
             ".SH NAME", f"{escape(page.name)} \\- {escape(page.summary)}",
             ".SH SYNOPSIS", *_synopsis(page.name, page), ".SH DESCRIPTION"]
    for paragraph in page.description or [page.summary]:
        lines += [".IP \\(bu 2", escape(paragraph[2:])] if paragraph.startswith("- ") else [".PP", escape(paragraph)]
    lines += [".SH OPTIONS", *(line for opt in page.options for line in _option(opt))]
    if page.commands:
        lines += [".SH COMMANDS", *_commands(page.name, page)]
    if page.examples:
        lines.append(".SH EXAMPLES")
        for command, what in page.examples:
            lines += [".PP", escape(what[:1].upper() + what[1:]) + ":", ".RS", ".nf",
                      *(escape(line) for line in command.replace("{bin}", bindir).splitlines()), ".fi", ".RE"]
    if page.exit_status:
        lines.append(".SH EXIT STATUS")
        for code, meaning in page.exit_status:
            lines += [".TP", f"\\fB{escape(code)}\\fR", escape(meaning)]
    lines.append(".SH FILES")
    for path, what in FILES:
        lines += [".TP", f"\\fI{escape(path)}\\fR", escape(what)]
    others = ["kahooks(1)", "ka-notify(1)", *(f"{PROGRAM_PREFIX}{kind}(1)" for kind in kinds()), *SEE_ALSO]
    see_also = [name for name in others if not name.startswith(f"{page.name}(")]
    lines += [".SH SEE ALSO", ",\n".join(f".BR {escape(name.split('(')[0])} ({name.split('(')[1]}" for name in see_also)]
    return "\n".join(lines) + "\n"
