"""The ``recorder-agent`` command (also ``python -m recorder_agent``).

    recorder-agent start [--dev] [--log-level L]   # the standalone worker
    recorder-agent inspect FILE... [--json]         # check recordings

``start`` is ``python -m livekit.agents start`` on the worker module that ships in the
package, so an installed package runs without a checkout's ``agent.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["start"]:
        from livekit.agents.__main__ import main as livekit_main

        worker = Path(__file__).with_name("worker.py")
        return livekit_main(["start", str(worker), *argv[1:]])

    parser = argparse.ArgumentParser(prog="recorder-agent")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "start", help="run the recording worker (flags of `python -m livekit.agents start`)"
    )
    ins = sub.add_parser("inspect", help="check recordings: streams, duration, gaps, A/V offset")
    ins.add_argument("files", nargs="+")
    ins.add_argument("--json", action="store_true", help="one JSON array on stdout")
    args = parser.parse_args(argv)

    from .inspection import format_report, inspect_file

    reports = [inspect_file(f) for f in args.files]
    if args.json:
        json.dump([r.to_dict() for r in reports], sys.stdout, indent=2)
        print()
    else:
        print("\n\n".join(format_report(r) for r in reports))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
