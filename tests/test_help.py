"""Help that tells the truth: each subcommand lists only its own options (the
global ones are documented once, in ``journal --help``), and the library's
``help()`` shows real parameters."""

from __future__ import annotations

import inspect
import pydoc
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from cli.main import cli
from journal.application import Journal

GLOBAL = ("--db", "--tenant", "--flows", "--json", "--debug", "--allow-unsigned")


def _commands(group: click.Group, path: list[str]) -> Iterator[list[str]]:
    for name, command in sorted(group.commands.items()):
        yield [*path, name]
        if isinstance(command, click.Group):
            yield from _commands(command, [*path, name])


COMMANDS = list(_commands(cli, []))


def _options_section(text: str) -> str:
    return text.split("\nOptions:\n", 1)[1] if "\nOptions:\n" in text else ""


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_a_subcommand_help_lists_only_its_own_options(path: list[str]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])

    assert result.exit_code == 0
    listed = [
        line.split()[0].rstrip(",")
        for line in _options_section(result.output).splitlines()
        if line.startswith("  -")
    ]
    assert not set(listed) & set(GLOBAL), listed
    if not isinstance(cli.get_command(click.Context(cli), path[0]), click.Group):
        assert "see 'journal --help'" in " ".join(result.output.split())


def test_the_global_options_are_documented_once_in_the_groups_help() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    options = _options_section(result.output)

    for option in GLOBAL:
        assert options.count(f"  {option} ") == 1, option


def test_global_options_still_work_after_the_command_though_hidden() -> None:
    result = CliRunner().invoke(cli, ["list", "--db", "memory://", "--json"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("{")


def test_journal_create_shows_its_real_parameters_in_help() -> None:
    parameters = inspect.signature(Journal.create).parameters
    rendered = pydoc.render_doc(Journal.create, renderer=pydoc.TextDoc())

    assert list(parameters) == [
        "self",
        "flow",
        "input",
        "parent",
        "schema_version",
        "execution_id",
        "lease",
    ]
    assert "**kwargs" not in rendered
    assert "ExecutionHandle" in rendered
