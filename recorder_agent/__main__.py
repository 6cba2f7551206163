"""Command line: ``python -m recorder_agent inspect FILE... [--json]``."""

from __future__ import annotations

import argparse
import json
import sys

from .inspection import format_report, inspect_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recorder_agent")
    sub = parser.add_subparsers(dest="command", required=True)
    ins = sub.add_parser("inspect", help="check recordings: streams, duration, gaps, A/V offset")
    ins.add_argument("files", nargs="+")
    ins.add_argument("--json", action="store_true", help="one JSON array on stdout")
    args = parser.parse_args(argv)

    reports = [inspect_file(f) for f in args.files]
    if args.json:
        json.dump([r.to_dict() for r in reports], sys.stdout, indent=2)
        print()
    else:
        print("\n\n".join(format_report(r) for r in reports))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
