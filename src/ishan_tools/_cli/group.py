"""A Typer group whose command name may be left out: `ishan migrate SCRIPT` runs `migrate run`.

The first argument that is neither one of the group's own options nor a command name starts
the default command, so `ishan crawl URL`, `ishan migrate SCRIPT` and `ishan players
--position CM` keep working beside `ishan crawl status`, `ishan migrate rollback` and
`ishan players like`.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from ishan_tools.errors import UsageError

__all__ = ["DefaultGroup", "default_group"]


class DefaultGroup(TyperGroup):
    """Runs `default_command` when the arguments name no command (set by `default_group`)."""

    default_command = ""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help:
            typer.echo(ctx.get_help(), color=ctx.color)
            ctx.exit(0)
        start = self._first_argument(ctx, args)
        if start is not None and args[start] not in self.commands:
            later = [a for a in args[start + 1 :] if a in self.commands]
            if later and args[start].startswith("-"):
                raise UsageError(
                    f"put options after the command: {ctx.command_path} {later[0]} ... "
                    f"{args[start]}"
                )
            args = [*args[:start], self.default_command, *args[start:]]
        return super().parse_args(ctx, args)

    def _first_argument(self, ctx: Any, args: list[str]) -> int | None:
        """Index of the first argument that is not the group's own option (or its value);
        None when there is none, or when help is asked for."""
        takes_value: dict[str, bool] = {}
        for param in self.get_params(ctx):
            if param.param_type_name == "option":  # Typer vendors click: no isinstance
                flag = bool(getattr(param, "is_flag", False) or getattr(param, "count", False))
                for name in (*param.opts, *param.secondary_opts):
                    takes_value[name] = not flag
        index = 0
        while index < len(args):
            arg = args[index]
            name = arg.split("=", 1)[0]
            if arg == "--" or name not in takes_value:
                return None if arg in ctx.help_option_names else index
            index += 2 if takes_value[name] and "=" not in arg else 1
        return None


def default_group(command: str) -> type[DefaultGroup]:
    """A `DefaultGroup` class (for `typer.Typer(cls=...)`) that defaults to `command`."""
    return type(f"DefaultGroup_{command}", (DefaultGroup,), {"default_command": command})
