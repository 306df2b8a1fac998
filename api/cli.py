"""The ``tierflow`` command line.

    tierflow validate FILE...     check workflow definitions; exit 1 listing every problem as
                                  FILE:LINE:COLUMN: path: message
    tierflow check                replay every ticket's history against the stored tickets
    tierflow serve [--demo]       run the HTTP service (uvicorn)
    tierflow sla scan             record SLA breaches now
    tierflow db upgrade|status    migrate the schema / show its revision
    tierflow auto-close           close tickets past their definition's auto-close delay now
    tierflow render               draw a workflow (or a ticket's place in it)
    tierflow tokens create|list|revoke|reset-admin   tokens (an account's, or a designer's) /
                                  rotate the admin token
    tierflow workflows publish|validate|list|diff   published definitions; two compared
    tierflow what-if              replay an account's history through a candidate definition
    tierflow migrate              move an account's open tickets to another version
    tierflow webhooks dispatch    send due webhook deliveries (one pass, or --loop)

Every option and argument has one line of help (``tests/test_cli.py`` walks the parser). A new
command group is one ``sub.add_parser`` plus its handlers, as ``db`` and ``tokens`` are.

Heavy imports (FastAPI, uvicorn, Graphviz) happen inside the commands that need them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import sqlalchemy as sa

from workflow import DefinitionError, Tierflow, TierflowError, load_definition
from workflow.models import Ticket


def _validate(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            d = load_definition(path)
        except DefinitionError as exc:
            print("\n".join(compiler_lines(path, exc)), file=sys.stderr)
            status = 1
        else:
            print(
                f"{path}: ok ({d.name} {d.version}, #{d.hash}, {len(d.spec.states)} states, "
                f"{len(d.transitions)} transitions)"
            )
    return status


class CliError(Exception):
    """A command's refusal: printed as one line, exit status 1."""


def _existing(url: str | None) -> Tierflow:
    """The engine over an existing database: a SQLite file that is not there is an error (opening
    it would create an empty one)."""
    from workflow.db import database_url

    resolved = database_url(url)
    u = sa.engine.make_url(resolved)
    path = u.database
    if (
        u.get_backend_name() == "sqlite"
        and path
        and path != ":memory:"
        and not Path(path).is_file()
    ):
        raise CliError(
            f"no database at {path} ({_redacted(resolved)}): give --database-url or set "
            "TIERFLOW_DATABASE_URL"
        )
    return Tierflow(resolved)


def _redacted(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _check(args: argparse.Namespace) -> int:
    tf = _existing(args.database_url)
    where = _redacted(tf.db.url)
    with tf.db.read() as conn:
        tickets = conn.execute(sa.select(sa.func.count()).select_from(Ticket)).scalar_one()
    problems = tf.check()
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check: {where}: {len(problems)} problem(s) in {tickets} ticket(s)", file=sys.stderr)
        return 1
    print(f"check: {where}: {tickets} ticket(s); every history replays to its stored state")
    return 0


def _tokens_create(args: argparse.Namespace) -> int:
    from .tokens import PLATFORM_ROLES, TokenStore

    if args.account is None and args.role not in PLATFORM_ROLES:
        raise CliError(
            f"--account is needed for role {args.role!r} "
            f"(only {', '.join(PLATFORM_ROLES)} tokens belong to no account)"
        )
    tf = _existing(args.database_url)
    name = args.name or f"{args.role} (tierflow tokens create)"
    store = TokenStore(tf, None)
    if args.account is None:
        token_id, token = store.issue_platform(role=args.role, name=name)
        print(f"token {token_id} for the platform as {args.role} ({name}); shown once:")
    else:
        token_id, token, user = store.issue(
            account=args.account, role=args.role, name=name, user_id=args.user
        )
        who = name if user is None else user.name
        print(f"token {token_id} for {args.account} as {args.role} ({who}); shown once:")
    print(token)
    return 0


def _tokens_list(args: argparse.Namespace) -> int:
    from .tokens import TokenStore

    tf = _existing(args.database_url)
    for t in TokenStore(tf, None).tokens(account=args.account):
        if args.account is None:
            who = f"platform {t.name}"
        else:
            who = f"user {t.user.id} {t.user.name}" if t.user else f"integration {t.name}"
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        print(f"{t.id}\t{t.role}\t{who}\t{state}")
    return 0


def _tokens_revoke(args: argparse.Namespace) -> int:
    from .tokens import TokenStore

    tf = _existing(args.database_url)
    TokenStore(tf, None).revoke(account=args.account, token_id=args.id)
    owner = "the platform" if args.account is None else args.account
    print(f"token {args.id} of {owner} revoked; every server refuses it within a second")
    return 0


def compiler_lines(path: str, exc: DefinitionError) -> list[str]:
    """``FILE:LINE:COLUMN: path: message`` per problem, as compilers print them (the line and
    column left out where a problem has none, e.g. an unreadable file)."""
    out = []
    for p in exc.errors:
        where = f"{path}:{p.line}:{p.column}" if p.line is not None else path
        out.append(f"{where}: {p}")
    return out


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise DefinitionError([f"cannot read file: {reason}"], path) from None


def _each_file(args: argparse.Namespace, act: Callable[[Tierflow, str, str], str]) -> int:
    tf = _existing(args.database_url)
    status = 0
    for path in args.files:
        try:
            print(f"{path}: {act(tf, path, _read(path))}")
        except DefinitionError as exc:
            print("\n".join(compiler_lines(path, exc)), file=sys.stderr)
            status = 1
        except TierflowError as exc:
            print(f"{path}: {exc.detail}", file=sys.stderr)
            status = 1
    return status


def _workflows_publish(args: argparse.Namespace) -> int:
    def publish(tf: Tierflow, path: str, text: str) -> str:
        p = tf.publish_text(text, source=path)
        what = "published" if p.created else "already published"
        return f"{what}: {p.name} {p.version} #{p.hash}"

    return _each_file(args, publish)


def _workflows_validate(args: argparse.Namespace) -> int:
    def validate(tf: Tierflow, path: str, text: str) -> str:
        d, new = tf.validate_text(text, source=path)
        what = "publishing it stores it" if new else "published already"
        return f"ok ({d.name} {d.version} #{d.hash}); {what}"

    return _each_file(args, validate)


def _workflows_list(args: argparse.Namespace) -> int:
    tf = _existing(args.database_url)
    versions = tf.published(args.name)
    if not versions:
        raise CliError(
            f"no published version of {args.name!r}" if args.name else "nothing published"
        )
    latest = {d.name: d.hash for d in tf.definitions()}
    for v in versions:
        mark = "  (latest)" if latest.get(v.name) == v.hash else ""
        print(f"{v.name}\t{v.version}\t#{v.hash}\t{v.published_at.isoformat()}{mark}")
    return 0


def _tokens_reset_admin(args: argparse.Namespace) -> int:
    import os

    from .tokens import TokenStore

    if os.environ.get("TIERFLOW_ADMIN_TOKEN"):
        raise CliError(
            "TIERFLOW_ADMIN_TOKEN is set: that is the admin token; change the variable instead"
        )
    tf = _existing(args.database_url)
    token = TokenStore(tf, None).reset_admin()
    print("admin token replaced; the previous one no longer works. Shown once:")
    print(token)
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from workflow import schema
    from workflow.db import Database

    db = Database(args.database_url)
    before = schema.status(db).current
    schema.upgrade(db)
    after = schema.status(db)
    print(f"db upgrade: {db.url}: {before or 'empty'} -> {after.current}")
    return 0


def _db_status(args: argparse.Namespace) -> int:
    from workflow import schema
    from workflow.db import Database

    db = Database(args.database_url)
    s = schema.status(db)
    state = "up to date" if s.up_to_date else "needs `tierflow db upgrade`"
    print(f"db status: {db.url}: at {s.current or 'empty'}, newest {s.head} ({state})")
    return 0 if s.up_to_date else 1


def _sla_scan(args: argparse.Namespace) -> int:
    tf = Tierflow(args.database_url)
    n = tf.scan_sla()
    print(f"sla scan: recorded breaches on {n} ticket(s)")
    return 0


def _auto_close(args: argparse.Namespace) -> int:
    tf = Tierflow(args.database_url)
    print(f"auto-close: closed {tf.close_expired()} ticket(s)")
    return 0


def _webhooks_dispatch(args: argparse.Namespace) -> int:
    from workflow.webhooks import Webhooks, load_key
    from workflow.webhooks_dispatch import Dispatcher

    from . import observability, webhooks_process
    from .settings import Settings
    from .webhooks_http import HttpSender

    settings = Settings()
    tf = _existing(args.database_url)
    key = load_key(tf.db.url, key=settings.webhooks_key, key_file=settings.webhooks_key_file)
    hooks = Webhooks(tf, key, allow_private=settings.webhooks_allow_private)
    sender = HttpSender(settings.webhooks_timeout_seconds)
    dispatcher = Dispatcher(hooks, send=sender, observer=observability.observe_webhook)
    try:
        if args.loop:
            observability.configure_logging()
            if not args.quiet:
                print(
                    f"webhooks dispatch: {_redacted(tf.db.url)}: woken by new events, "
                    f"at least every {args.poll:g} s (Ctrl-C ends)",
                    flush=True,
                )
            webhooks_process.loop(dispatcher, poll=args.poll, parent=args.parent_pid)
            return 0
        total = done = 0
        while True:  # one pass, repeated while it finds work (a long backlog, a chain)
            r = dispatcher.run_once()
            if r.skipped:
                print("webhooks dispatch: another dispatcher holds this SQLite database; skipped")
                return 0
            total += r.attempted
            done += r.delivered
            if not (r.attempted or r.fanned_out):
                break
        print(f"webhooks dispatch: {total} attempt(s), {done} delivered")
        return 0
    finally:
        dispatcher.close()
        sender.close()


def _serve(args: argparse.Namespace) -> int:
    from .server import serve

    return serve(
        host=args.host,
        port=args.port,
        workers=args.workers,
        demo=args.demo,
        database_url=args.database_url,
    )


def _render(args: argparse.Namespace) -> int:
    from diagrams.cli import render_command

    return render_command(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tierflow", description="Tiered-support workflow engine")
    p.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL (default: $TIERFLOW_DATABASE_URL, else sqlite:///tierflow.db)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="validate workflow definition files")
    v.add_argument("files", nargs="+", metavar="FILE", help="a workflow definition (YAML)")
    v.set_defaults(func=_validate)

    c = sub.add_parser("check", help="replay every ticket's history and compare")
    c.set_defaults(func=_check)

    s = sub.add_parser("serve", help="run the HTTP API")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    s.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")
    s.add_argument("--demo", action="store_true", help="load a demo account with tickets")
    s.set_defaults(func=_serve)

    dbp = sub.add_parser("db", help="database schema (Alembic migrations)")
    db_sub = dbp.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="migrate to the newest schema").set_defaults(func=_db_upgrade)
    db_sub.add_parser("status", help="show the schema revision").set_defaults(func=_db_status)

    sla = sub.add_parser("sla", help="SLA clocks")
    sla_sub = sla.add_subparsers(dest="sla_command", required=True)
    scan = sla_sub.add_parser("scan", help="record breaches of running clocks now")
    scan.set_defaults(func=_sla_scan)

    ac = sub.add_parser("auto-close", help="close tickets past their auto-close delay now")
    ac.set_defaults(func=_auto_close)

    r = sub.add_parser("render", help="render a workflow diagram")
    r.add_argument(
        "--workflow", default="support", help="built-in workflow name or a definition .yaml file"
    )
    r.add_argument(
        "--format",
        choices=["svg", "png", "dot", "mmd"],
        default=None,
        help="output format (default: from the -o file's extension, else svg)",
    )
    r.add_argument("--show", default="", help="comma list: guards,roles")
    r.add_argument(
        "--ticket", type=int, default=None, help="draw this ticket's story (needs --account)"
    )
    r.add_argument(
        "--account", default=None, help="account slug: its live load, or its --ticket's story"
    )
    r.add_argument("-o", "--output", default=None, help="file to write (default: stdout)")
    r.set_defaults(func=_render)

    tok = sub.add_parser("tokens", help="API tokens (shown once, stored hashed)")
    tok_sub = tok.add_subparsers(dest="tokens_command", required=True)
    tc = tok_sub.add_parser("create", help="issue a token for one account and role; print it once")
    tc.add_argument(
        "--account", default=None, help="account slug (e.g. demo); none for a designer token"
    )
    tc.add_argument(
        "--role", required=True, help="role the token acts as (e.g. l1_agent, or designer)"
    )
    tc.add_argument(
        "--name",
        default=None,
        help="the new person (or, for role integration, the integration); default: the role",
    )
    tc.add_argument("--user", type=int, default=None, help="a token for this existing user id")
    tc.set_defaults(func=_tokens_create)
    tl = tok_sub.add_parser("list", help="the account's tokens (never the secrets)")
    tl.add_argument(
        "--account", default=None, help="account slug; none: the platform's designer tokens"
    )
    tl.set_defaults(func=_tokens_list)
    tv = tok_sub.add_parser("revoke", help="revoke a token; servers refuse it within a second")
    tv.add_argument("--account", default=None, help="account slug; none: a platform designer token")
    tv.add_argument("--id", type=int, required=True, help="the token's id (see `tokens list`)")
    tv.set_defaults(func=_tokens_revoke)
    tr = tok_sub.add_parser(
        "reset-admin", help="replace the generated admin token; the old one stops working"
    )
    tr.set_defaults(func=_tokens_reset_admin)

    wh = sub.add_parser("webhooks", help="webhook deliveries")
    wh_sub = wh.add_subparsers(dest="webhooks_command", required=True)
    wd = wh_sub.add_parser("dispatch", help="send due deliveries now (for cron), or --loop")
    wd.add_argument("--loop", action="store_true", help="keep dispatching until interrupted")
    wd.add_argument(
        "--poll", type=float, default=1.0, help="seconds between idle passes with --loop"
    )
    # serve's own dispatcher process: ends with serve, says nothing at start
    wd.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    wd.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    wd.set_defaults(func=_webhooks_dispatch)

    wf = sub.add_parser("workflows", help="workflow definitions published in the database")
    wf_sub = wf.add_subparsers(dest="workflows_command", required=True)
    wp = wf_sub.add_parser("publish", help="validate and publish definition files")
    wp.add_argument("files", nargs="+", metavar="FILE", help="a workflow definition (YAML)")
    wp.set_defaults(func=_workflows_publish)
    wv = wf_sub.add_parser(
        "validate", help="what publishing would answer (problems with lines), storing nothing"
    )
    wv.add_argument("files", nargs="+", metavar="FILE", help="a workflow definition (YAML)")
    wv.set_defaults(func=_workflows_validate)
    wl = wf_sub.add_parser("list", help="published versions, newest first")
    wl.add_argument("name", nargs="?", default=None, help="only this workflow (default: all)")
    wl.set_defaults(func=_workflows_list)

    from .cli_designer import add_commands, add_diff

    add_diff(wf_sub)
    add_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except TierflowError as exc:
        print(f"tierflow: {exc.detail}", file=sys.stderr)
        return 1
    except CliError as exc:
        print(f"tierflow {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
