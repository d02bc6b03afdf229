"""The `isd-sync` command: pull and status."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from isd_service.sync import client, local


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isd-sync",
        description="Keep a local copy of the published Industry Standing Data, verified.")
    sub = parser.add_subparsers(dest="command", required=True)
    pull = sub.add_parser("pull", help="bring the local copy to the latest (or given) version")
    status = sub.add_parser("status", help="the version held, and whether a newer one exists")
    verify = sub.add_parser(
        "verify", help="check the local copy against its version's hashes; name the entities "
                       "and key ranges that differ")
    for p in (pull, status, verify):
        p.add_argument("--server", required=True,
                       help="the service's base URL, or a static mirror's (isd mirror)")
        p.add_argument("--dir", required=True, type=Path, help="folder of the local copy")
    pull.add_argument("--format", choices=local.FORMATS, default=None,
                      help="csv (one file per entity) or sqlite; default: as held, else csv")
    pull.add_argument("--version", type=int, default=None, help="default: the latest")
    for p in (pull, status):
        p.add_argument("--wait", type=float, default=client.DEFAULT_WAIT, metavar="SECONDS",
                       help="how long to wait in all, asking again after each Retry-After, "
                            "while the server answers 503 (a new version's files still being "
                            "built); 0: fail at once (default: %(default).0f)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "status":
            info = client.status(args.server, args.dir, wait=args.wait)
            held = info["held"] if info["held"] is not None else "nothing"
            note = "up to date" if info["up_to_date"] else f"version {info['latest']} is available"
            print(f"held: {held}; latest on the server: {info['latest']} ({note})")
            return 0
        if args.command == "verify":
            return _verify(args.server, args.dir)
        progress = client.terminal_progress()
        result = client.pull(args.server, args.dir, fmt=args.format, version=args.version,
                             progress=progress, wait=args.wait)
    except local.Busy as exc:
        print(f"isd-sync: {exc}; try again later", file=sys.stderr)
        return 1
    except client.SyncError as exc:
        print(f"isd-sync: error: {exc}; the local copy was not changed", file=sys.stderr)
        return 1
    if progress:
        sys.stderr.write("\n")
    if result.mode == "up-to-date":
        print(f"version {result.version}: already held")
    else:
        hops = f", {result.deltas} delta file(s)" if result.mode == "delta" else ""
        print(f"version {result.version}: {result.mode} applied ({result.changes} records"
              f"{'' if result.previous is None else f' from {result.previous}'}{hops})")
    return 0


def _verify(server: str, root: Path) -> int:
    version, damaged = client.check(server, root)
    if not damaged:
        print(f"version {version}: the local copy verifies")
        return 0
    for d in damaged:
        ranges = f": {', '.join(d.ranges)}" if d.ranges else ""
        print(f"version {version}: entity {d.entity} does not verify: {d.detail}{ranges}")
    print(f"isd-sync: the local copy is damaged; remove {root / local.CURRENT} and pull to "
          "download it again", file=sys.stderr)
    return 1
