"""The designer's commands: ``tierflow what-if``, ``tierflow migrate`` and the diff of two
versions (``tierflow workflows diff``). Each prints a short human summary, or with ``--json``
exactly what the HTTP route answers."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from typing import Any

from workflow import Definition, InputError, Tierflow, load_definition
from workflow.diff import SECTIONS, diff
from workflow.migrate import named_version
from workflow.whatif import what_if

__all__ = ["add_commands", "diff_command"]

DEFAULT_DAYS = 30


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 instant: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset (e.g. Z or +00:00)")
    return value


def _json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _existing(args: argparse.Namespace) -> Tierflow:
    from .cli import _existing as existing

    return existing(args.database_url)


def _candidate(tf: Tierflow, args: argparse.Namespace) -> Definition:
    if args.file:
        return load_definition(args.file)
    return named_version(tf, args.workflow, args.version, "--version")


def what_if_command(args: argparse.Namespace) -> int:
    tf = _existing(args)
    candidate = _candidate(tf, args)
    until = args.to or tf.clock()
    try:
        since = args.from_ or until - timedelta(days=DEFAULT_DAYS)
    except OverflowError:
        why = f"{until.isoformat()} leaves no {DEFAULT_DAYS} days before it"
        raise InputError("--to", why) from None
    report = what_if(tf, account=args.account, candidate=candidate, since=since, until=until)
    if args.json:
        _json(report.to_dict())
        return 0
    cur, cand = report.current, report.candidate
    print(
        f"what-if: {report.account}, {report.workflow}: tickets received {since.isoformat()} .. "
        f"{until.isoformat()} (evaluated {report.evaluated_at.isoformat()})"
    )
    rows = [
        ("", "as it happened", f"candidate {candidate.version}"),
        ("tickets", str(cur.tickets), str(cand.tickets)),
        ("first response met", _share(cur.first_response), _share(cand.first_response)),
        ("  breached / open", _bo(cur.first_response), _bo(cand.first_response)),
        ("resolution met", _share(cur.resolution), _share(cand.resolution)),
        ("  breached / open", _bo(cur.resolution), _bo(cand.resolution)),
        (
            "median to first response",
            _hours(cur.median_first_response_seconds),
            _hours(cand.median_first_response_seconds),
        ),
        (
            "breached clocks by priority",
            _by(cur.breaches_by_priority),
            _by(cand.breaches_by_priority),
        ),
    ]
    for a, b, c in rows:
        print(f"{a:<28} {b:<22} {c}")
    for n in cand.not_replayed:
        print(f"not replayed: ticket {n['ticket']}: {n['message']}")
    print(f"events the candidate would have refused: {report.refused_total}")
    for r in report.refused:
        print(
            f"  ticket {r.ticket_id} #{r.seq} {r.event} from {r.from_state}: {r.guard}: {r.message}"
        )
    return 0


def migrate_command(args: argparse.Namespace) -> int:
    tf = _existing(args)
    state_map = dict(pair.split("=", 1) for pair in args.map)
    report = tf.migrate(
        account=args.account,
        workflow=args.workflow,
        from_version=args.from_version,
        to_version=args.to_version,
        state_map=state_map,
        dry_run=not args.apply,
        role="admin",
        actor="tierflow migrate",
    )
    if args.json:
        _json(report.to_dict())
        return 0
    verb = "would move" if report.dry_run else "moved"
    for i in report.items:
        where = f"{i.from_state} -> {i.to_state}"
        if i.can_move:
            print(f"ticket {i.ticket_id}: {where}" + ("" if report.dry_run else " (moved)"))
        else:
            print(f"ticket {i.ticket_id}: {where}: cannot move: {i.reason}")
    done = report.movable if report.dry_run else report.moved
    print(
        f"migrate {report.workflow} {report.from_version} -> {report.to_version}: {verb} {done}, "
        f"{report.refused} cannot move"
        + (" (dry run: --apply to move them)" if report.dry_run else "")
    )
    return 0


def diff_command(args: argparse.Namespace) -> int:
    tf = _existing(args)
    old = _side(tf, args.workflow, args.from_, "--from")
    new = _side(tf, args.workflow, args.to, "--to")
    d = diff(old, new)
    if args.json:
        _json(d.to_dict())
        return 0
    print(f"diff {d.name} {d.from_version} #{d.from_hash} -> {d.to_version} #{d.to_hash}")
    for name in SECTIONS:
        section = getattr(d, name)
        for kind, mark in (("added", "+"), ("removed", "-"), ("changed", "~")):
            for e in getattr(section, kind):
                change = f": {e.get('before')} -> {e.get('after')}" if kind == "changed" else ""
                print(f"{mark} {name[:-1] if name.endswith('s') else name} {e['key']}{change}")
    for field in d.other:
        print(f"~ {field}")
    if d.empty:
        print("no differences")
    return 0


def _side(tf: Tierflow, workflow: str, ref: str, flag: str) -> Definition:
    if ref.endswith((".yaml", ".yml")):
        return load_definition(ref)
    return named_version(tf, workflow, ref, flag)


def _share(a: Any) -> str:
    if a.share_met is None:
        return "-"
    return f"{a.met} / {a.met + a.breached} ({100 * a.share_met:.1f} %)"


def _bo(a: Any) -> str:
    return f"{a.breached} / {a.open}"


def _hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.2f} business h"


def _by(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"


def add_commands(sub: Any) -> None:
    """``what-if`` and ``migrate`` under the top-level parser's subcommands."""
    w = sub.add_parser("what-if", help="replay an account's history through a candidate")
    w.add_argument("--account", required=True, help="account slug whose tickets are replayed")
    w.add_argument("--workflow", default="support", help="workflow name (default: support)")
    which = w.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", help="a published version (or hash) as the candidate")
    which.add_argument("--file", help="a definition YAML file as the candidate")
    w.add_argument(
        "--from", dest="from_", type=_instant, help="tickets received from (default: 30 days ago)"
    )
    w.add_argument("--to", type=_instant, help="... until, excluded (default: now)")
    w.add_argument("--json", action="store_true", help="print the HTTP route's JSON answer")
    w.set_defaults(func=what_if_command)

    m = sub.add_parser("migrate", help="move an account's open tickets to another version")
    m.add_argument("--account", required=True, help="account slug whose tickets move")
    m.add_argument("--workflow", default="support", help="workflow name (default: support)")
    m.add_argument("--from", dest="from_version", required=True, help="the version they are on")
    m.add_argument("--to", dest="to_version", required=True, help="the version they move to")
    m.add_argument(
        "--map", action="append", default=[], metavar="OLD=NEW", help="state map entry (repeat)"
    )
    m.add_argument("--apply", action="store_true", help="move them (default: a dry run)")
    m.add_argument("--json", action="store_true", help="print the HTTP route's JSON answer")
    m.set_defaults(func=migrate_command)


def add_diff(sub: Any) -> None:
    """``diff`` under ``tierflow workflows``."""
    d = sub.add_parser("diff", help="what changed between two versions of a workflow")
    d.add_argument("--workflow", default="support", help="workflow name (default: support)")
    d.add_argument(
        "--from", dest="from_", required=True, help="a published version (or hash) or a .yaml"
    )
    d.add_argument("--to", required=True, help="a published version (or hash) or a .yaml file")
    d.add_argument("--json", action="store_true", help="print the HTTP route's JSON answer")
    d.set_defaults(func=diff_command)
