"""Every option of every command says in its help what happens when it is not
given: its default (the value itself, where it has one) or that it is
required. Checked by walking the parsers, so a new option cannot forget it."""
import argparse

import pytest

from medyate.cli import build_parser
from medyate.commands.flash import build_parser as flash_parser


def _parsers():
    top = build_parser()
    yield "medyate", top
    for a in top._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield f"medyate {name}", sub
    yield "medyate-flash", flash_parser()


def _options():
    for prog, p in _parsers():
        for a in p._actions:
            if a.option_strings and not isinstance(a, (argparse._HelpAction,
                                                       argparse._VersionAction,
                                                       argparse._SubParsersAction)):
                yield prog, a


def test_every_command_is_walked():
    progs = {prog for prog, _ in _parsers()}
    assert {"medyate plan", "medyate train", "medyate infer", "medyate demo",
            "medyate-flash"} <= progs


@pytest.mark.parametrize("prog, action", list(_options()),
                         ids=lambda v: v if isinstance(v, str) else "/".join(v.option_strings))
def test_option_help_names_its_default(prog, action):
    h = (action.help or "").lower()
    where = f"{prog} {'/'.join(action.option_strings)}: {action.help!r}"
    if action.required:
        assert "required" in h, where
        return
    assert "default" in h or "required" in h, where
    d = action.default
    if d is not None and d is not False and d is not argparse.SUPPRESS:
        assert str(d).lower() in h, f"{where} does not show its default {d!r}"


def test_help_renders():
    for prog, p in _parsers():
        assert p.format_help()
