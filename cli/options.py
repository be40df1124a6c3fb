"""Global options, accepted before or after the subcommand, and settings.

Each global option is declared on the group *and* on every command; its
callback only records the value given, so the command can resolve settings
with the documented precedence: flag, environment, pyproject, default.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cli.errors import CliError
from cli.params import DB_URL, TENANT, check_db_url, check_tenant

if TYPE_CHECKING:
    from cli.output import Output
    from journal.application import Journal
    from journal.flow import Flow
    from journal.keys import Keyring

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "sqlite:///journal.db"
DEFAULT_TENANT = "tenant_default"
ENV = {"db": "JOURNAL_DB", "tenant": "JOURNAL_TENANT", "flows": "JOURNAL_FLOWS"}


@dataclass
class GlobalFlags:
    """The global options as given on the command line (None: not given)."""

    db: str | None = None
    tenant: str | None = None
    flows: list[str] = field(default_factory=list)
    json: bool = False
    debug: bool = False
    allow_unsigned: bool = False


@dataclass(frozen=True)
class Settings:
    """Resolved settings, and where the store URL and tenant came from."""

    db: str
    tenant: str
    flow_modules: tuple[str, ...]
    json: bool
    debug: bool
    sources: dict[str, str]
    allow_unsigned: bool = False


def flags_of(ctx: click.Context) -> GlobalFlags:
    """The flags object shared by every context of this invocation."""
    flags = ctx.find_object(GlobalFlags)
    if flags is None:
        flags = ctx.find_root().ensure_object(GlobalFlags)
    return flags


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is None or value is False or value == ():
        return value
    flags = flags_of(ctx)
    if param.name == "flows":
        flags.flows.extend(value)
    else:
        setattr(flags, str(param.name), value)
    return value


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("execution-journal")
    except PackageNotFoundError:  # running from a checkout, not installed
        number = "unknown"
    click.echo(f"journal {number}")
    ctx.exit(0)


def _global_option_decorators(hidden: bool) -> tuple[Callable[[F], F], ...]:
    """The global options; `hidden` on subcommands, whose help lists only
    their own options (the group's help documents these once)."""
    return (
        click.option(
            "--db", type=DB_URL, expose_value=False, hidden=hidden,
            callback=_remember,
            help=f"Store URL [env JOURNAL_DB; default {DEFAULT_DB}].",
        ),
        click.option(
            "--tenant", type=TENANT, expose_value=False, hidden=hidden,
            callback=_remember,
            help=f"Tenant [env JOURNAL_TENANT; default {DEFAULT_TENANT}].",
        ),
        click.option(
            "--flows", metavar="MODULE", multiple=True, expose_value=False,
            hidden=hidden, callback=_remember,
            help="Module defining journal.Flow objects (repeatable) "
            "[env JOURNAL_FLOWS, comma-separated; pyproject [tool.journal] flows].",
        ),
        click.option(
            "--json", is_flag=True, expose_value=False, hidden=hidden,
            callback=_remember,
            help="Machine output on stdout (messages go to stderr).",
        ),
        click.option(
            "--debug", is_flag=True, expose_value=False, hidden=hidden,
            callback=_remember,
            help="Show tracebacks and the PostgreSQL driver's warnings.",
        ),
        click.option(
            "--allow-unsigned", is_flag=True, expose_value=False, hidden=hidden,
            callback=_remember,
            help="Accept unsigned chains, and write unsigned into a signed store "
            "[env JOURNAL_ALLOW_UNSIGNED=1].",
        ),
        click.option(
            "--version", is_flag=True, expose_value=False, hidden=hidden, is_eager=True,
            callback=_version, help="Show the version and exit.",
        ),
    )  # fmt: skip


#: Under every subcommand's help: where the global options are described.
GLOBAL_EPILOG = (
    "Global options (--db, --tenant, --flows, --json, --debug, "
    "--allow-unsigned) go before or after the command: see 'journal --help'."
)


def global_options(function: F, *, hidden: bool = False) -> F:
    """Add the global options to a group (shown in its help) or to a
    command (`hidden`: accepted after the command, documented once)."""
    for option in reversed(_global_option_decorators(hidden)):
        function = option(function)
    return function


def _pyproject(cwd: Path) -> dict[str, Any]:
    path = cwd / "pyproject.toml"
    if not path.is_file():
        return {}
    import tomllib

    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CliError(f"{path}: cannot read [tool.journal]: {e}") from e
    section = data.get("tool", {}).get("journal", {})
    return section if isinstance(section, dict) else {}


def _split(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    return tuple(str(item).strip() for item in items if str(item).strip())


def _checked(key: str, value: str, source: str, cwd: Path | None) -> str:
    """Check a store URL or tenant: typed (flag, environment) it is a usage
    error (exit 2); read from pyproject.toml it is bad data in a file (1)."""
    check = check_db_url if key == "db" else check_tenant
    try:
        return check(value)
    except ValueError as e:
        if source == "pyproject":
            path = (cwd or Path.cwd()) / "pyproject.toml"
            raise CliError(f"{path}: [tool.journal] {key}: {e}") from e
        if source == "env":
            raise click.UsageError(f"Invalid value for {ENV[key]}: {e}") from e
        raise  # a flag was checked by its type; the default is valid


def resolve(flags: GlobalFlags, cwd: Path | None = None) -> Settings:
    """Apply the precedence: flag, environment, pyproject, default."""
    given: dict[str, Any] = {"db": flags.db, "tenant": flags.tenant}
    given["flows"] = tuple(flags.flows) or None
    defaults: dict[str, Any] = {"db": DEFAULT_DB, "tenant": DEFAULT_TENANT}
    defaults["flows"] = ()
    pyproject: dict[str, Any] | None = None
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, flag_value in given.items():
        env_value = os.environ.get(ENV[key]) or None
        if flag_value is not None:
            values[key], sources[key] = flag_value, "flag"
        elif env_value is not None:
            values[key], sources[key] = env_value, "env"
        else:
            if pyproject is None:
                pyproject = _pyproject(cwd or Path.cwd())
            if pyproject.get(key) is not None:
                values[key], sources[key] = pyproject[key], "pyproject"
            else:
                values[key], sources[key] = defaults[key], "default"
    for key in ("db", "tenant"):
        values[key] = _checked(key, str(values[key]), sources[key], cwd)
    return Settings(
        db=values["db"],
        tenant=values["tenant"],
        flow_modules=_split(values["flows"]),
        json=flags.json,
        debug=flags.debug,
        sources=sources,
        allow_unsigned=flags.allow_unsigned,
    )


def load_flows(modules: tuple[str, ...]) -> list[Flow]:
    """Import each module (the current directory is importable) and collect
    every module-level `journal.Flow`; a failure is one `CliError`."""
    if not modules:
        return []
    from journal.flow import Flow

    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()
    flows: dict[str, Flow] = {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except SystemExit as e:  # it does not choose the journal's exit code
            raise CliError(
                f"cannot import flows module {name!r}: it called "
                f"sys.exit({e.code!r}) while being imported"
            ) from e
        except Exception as e:  # user code: any failure is a load error
            raise CliError(
                f"cannot import flows module {name!r}: {type(e).__name__}: {e}"
            ) from e
        found = [value for value in vars(module).values() if isinstance(value, Flow)]
        if not found:
            raise CliError(f"flows module {name!r} defines no journal.Flow")
        for flow in found:
            if flows.setdefault(flow.name, flow) is not flow:
                raise CliError(f"two different flows are named {flow.name!r}")
    return list(flows.values())


class App:
    """What a command works with: settings, output, the journal, the flows."""

    def __init__(self, settings: Settings) -> None:
        from cli.output import Output

        self.settings = settings
        self.out: Output = Output(json_mode=settings.json)
        self._flows: list[Flow] | None = None

    def open(self, *, create: bool = False) -> Journal:
        """Open the journal; read-only commands never create a store."""
        import journal

        return journal.open(
            self.settings.db,
            tenant=self.settings.tenant,
            create=create,
            keyring=self.keyring(),
        )

    def keyring(self) -> Keyring:
        """The signing keys from the environment, and --allow-unsigned."""
        from journal.keys import Keyring

        return Keyring.from_env(allow_unsigned=self.settings.allow_unsigned)

    @property
    def flows(self) -> list[Flow]:
        if self._flows is None:
            self._flows = load_flows(self.settings.flow_modules)
        return self._flows


def command(
    group: click.Group, name: str, **kwargs: Any
) -> Callable[[Callable[..., Any]], click.Command]:
    """Declare a subcommand of `group` that takes the global options and
    receives the `App` as its first argument."""

    def decorator(function: Callable[..., Any]) -> click.Command:
        @functools.wraps(function)
        def run(*args: Any, **kw: Any) -> Any:
            ctx = click.get_current_context()
            return function(App(resolve(flags_of(ctx))), *args, **kw)

        kwargs.setdefault("epilog", GLOBAL_EPILOG)
        return group.command(name, **kwargs)(global_options(run, hidden=True))

    return decorator
