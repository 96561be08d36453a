"""``postline doctor``: check, from where it runs, what mail's Step 1 and Step 3 blame.

``run_checks(settings, to)`` runs every group in order and returns their lines
(``report.Check``):

1. ``files``: every file the configuration names is readable;
2. ``certificate``: the ingress certificate loads with its key, its expiry, its names;
3. ``policy``: relay networks and AUTH;
4. ``users``: the users file and its hashes;
5. ``broker``: every node, the topology, the permissions;
6. ``dns``: the resolvers answer; ``dkim``: each signing key is published;
7. ``mx`` and ``smtp`` (only with ``to``): the route, the MX lookup and one
   conversation per host, never DATA;
8. ``endpoints``: the audit API and each service's ``/readyz``.

A configuration that does not load never gets here (``postline`` exits 2).
Every network step has a timeout of a few seconds; groups do not stop each
other (a dead broker still lets the DNS lines run), and a group that breaks
unexpectedly becomes one ``FAIL`` line naming it instead of ending the run.
"""

from __future__ import annotations

from collections.abc import Awaitable

from postline.app.doctor.broker import broker_checks
from postline.app.doctor.certificate import certificate_checks
from postline.app.doctor.dkim import dkim_checks
from postline.app.doctor.dns import dns_checks
from postline.app.doctor.endpoints import endpoint_checks
from postline.app.doctor.files import file_checks
from postline.app.doctor.mx import destination_checks
from postline.app.doctor.policy import auth_check, networks_checks
from postline.app.doctor.report import Check, escape, failed, passed
from postline.app.doctor.users import users_checks
from postline.app.settings import Settings

__all__ = ["Check", "run_checks"]


async def run_checks(
    settings: Settings, source: str, to: tuple[str, str] | None = None
) -> list[Check]:
    """Every check (module docstring); ``to`` is ``(address, domain)``."""
    checks = [passed("config", f"{source} is valid")]
    checks += file_checks(settings)
    checks += certificate_checks(settings)
    checks += networks_checks(list(settings.ingress.relay_networks))
    checks.append(auth_check(settings.ingress))
    checks += users_checks(settings.ingress.users_file)
    checks += await _guarded("broker", broker_checks(settings))
    checks += await _guarded("dns", dns_checks(settings.delivery))
    checks += await _guarded("dkim", dkim_checks(settings))
    if to is not None:
        checks += await _guarded(f"mx {to[1]}", destination_checks(settings, *to))
    checks += await _guarded("endpoints", endpoint_checks(settings))
    return checks


async def _guarded(group: str, checks: Awaitable[list[Check]]) -> list[Check]:
    """The group's lines, or one ``FAIL`` line when it raised something unforeseen."""
    try:
        return await checks
    except Exception as error:
        found = f"the check itself failed: {type(error).__name__}: {escape(error)}"
        return [failed(group, found, "report this; the other checks still ran")]
