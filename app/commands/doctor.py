"""``postline [--config FILE] doctor [--to ADDRESS] [--json]``: what is wrong, from here.

Runs ``postline.app.doctor.run_checks`` and prints one line per check,
``PASS``/``WARN``/``FAIL``, its name, what it found and, for ``WARN`` and
``FAIL``, what to do (``--json``: a list of ``{status, check, found, advice}``).
``--to ADDRESS`` adds the route, a live MX lookup for the address's domain and
an SMTP conversation with each host, up to ``RCPT TO`` (never DATA).

Exit status: 0 when nothing failed (warnings allowed), 1 when a check failed,
2 for bad arguments or a configuration that does not load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from postline.app.commands.common import UsageError, settings_of

FAILED = 1


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "doctor", help="check configuration, broker, DNS and a destination (PASS/WARN/FAIL)"
    )
    parser.add_argument("--to", metavar="ADDRESS", help="also check delivery to this address")
    parser.add_argument("--json", action="store_true", help="print a JSON list of the checks")
    parser.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from postline.app.doctor import run_checks
    from postline.app.doctor.report import any_failed, as_json, render
    from postline.delivery.route import domain_of

    to = None
    if args.to is not None:
        domain = domain_of(args.to)
        if domain is None or any(char.isspace() for char in args.to):
            raise UsageError(f"--to {args.to!r} is not a mail address")
        to = (args.to, domain)
    settings = settings_of(args, logs=False)
    source = args.config or os.environ.get("POSTLINE_CONFIG") or "the defaults and environment"
    checks = asyncio.run(run_checks(settings, str(source), to))
    if args.json:
        print(json.dumps([as_json(check) for check in checks], indent=2))
    else:
        for check in checks:
            print(render(check))
    return FAILED if any_failed(checks) else 0
