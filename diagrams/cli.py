"""``tierflow render``: draw a workflow, one ticket's place in it, or one account's live load.

    tierflow render [--workflow NAME|FILE.yaml] [--format svg|png|dot|mmd] [--show guards,roles]
                    [--account SLUG [--ticket ID]] [-o FILE]

The format is ``--format``, else the extension of ``-o FILE`` (``x.png`` is PNG), else SVG.

Without ``--account`` it draws the workflow itself (a built-in definition by name, or a YAML file,
so a draft can be looked at before it is published) and opens no database. ``--account`` alone
draws the account's live view; with ``--ticket`` the ticket's story (options as the ``admin``
role sees them: guards only, no role check). Errors print one line and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sqlalchemy as sa

from workflow import Definition, Tierflow, TierflowError, builtin_definitions, load_definition
from workflow.db import database_url
from workflow.stats import state_stats

from .extract import live_diagram, parse_show, ticket_diagram
from .model import Diagram
from .output import GraphvizMissing, RenderError, render, workflow_image

__all__ = ["CliError", "output_format", "render_command"]

ROLE = "admin"
"""The role ticket options are explained for."""


class CliError(Exception):
    pass


FORMATS = ("svg", "png", "dot", "mmd")


def output_format(requested: str | None, output: str | None) -> str:
    """``--format`` when given, else the ``-o`` file's extension (``.gv`` is DOT), else SVG."""
    if requested:
        return requested
    if output:
        ext = Path(output).suffix.lower().lstrip(".")
        ext = "dot" if ext == "gv" else ext
        if ext in FORMATS:
            return ext
        if ext:
            raise CliError(
                f"cannot tell the format from {output!r}: give --format ({', '.join(FORMATS)})"
            )
    return "svg"


def render_command(args: argparse.Namespace) -> int:
    try:
        args.format = output_format(args.format, args.output)
        data = _render(args)
        if args.output:
            Path(args.output).write_bytes(data)
        elif args.format == "png" and sys.stdout.isatty():
            raise CliError("will not write PNG to a terminal: give -o FILE")
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
    except (TierflowError, GraphvizMissing, RenderError) as exc:
        return _fail(exc.detail)
    except (CliError, ValueError, OSError) as exc:
        return _fail(str(exc))
    except sa.exc.SQLAlchemyError as exc:
        return _fail(f"database error: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
    return 0


def _fail(message: str) -> int:
    print(f"tierflow render: {message}", file=sys.stderr)
    return 1


def _render(args: argparse.Namespace) -> bytes:
    fmt: str = args.format
    show = parse_show(args.show or "")
    if args.ticket is not None and args.account is None:
        raise CliError("--ticket needs --account (the ticket's account slug)")
    if args.account is None:
        return workflow_image(_definition(args.workflow), fmt, show)
    if show:
        raise CliError("--show applies to the workflow diagram only (drop --account/--ticket)")
    tf = _open(args.database_url)
    return render(_account_diagram(tf, args), fmt)


def _account_diagram(tf: Tierflow, args: argparse.Namespace) -> Diagram:
    account: str = args.account
    if args.ticket is None:
        stats = state_stats(tf, account=account, workflow=args.workflow)
        return live_diagram(tf.definition(args.workflow), stats, account=account)
    ticket = tf.get_ticket(account=account, ticket_id=args.ticket)
    definition = tf.definition(ticket.workflow, ticket.definition_hash)
    events = tf.events(account=account, ticket_id=args.ticket)
    options = tf.explain(account=account, ticket_id=args.ticket, role=ROLE)
    return ticket_diagram(definition, ticket, events, options, tf.clock())


def _definition(workflow: str) -> Definition:
    """A built-in definition by name, or a definition file (``*.yaml`` / ``*.yml``)."""
    if workflow.endswith((".yaml", ".yml")) or Path(workflow).is_file():
        return load_definition(workflow)
    known = {d.name: d for d in builtin_definitions()}
    if workflow not in known:
        raise CliError(
            f"unknown workflow {workflow!r} (built in: {', '.join(sorted(known))}; "
            "or give a .yaml file)"
        )
    return known[workflow]


def _open(url: str | None) -> Tierflow:
    """The engine over an *existing* database (never creates an empty SQLite file)."""
    resolved = database_url(url)
    u = sa.engine.make_url(resolved)
    if (
        u.get_backend_name() == "sqlite"
        and u.database not in (None, "", ":memory:")
        and not Path(u.database).is_file()
    ):
        raise CliError(f"no database at {u.database} (give --database-url)")
    return Tierflow(resolved)
