"""``--to ADDRESS``: where mail for its domain goes, and a conversation with each host.

The route is delivery's own (``postline.delivery.route.route_for``): a
``[delivery] routes`` entry or the smarthost wins over the MX records. MX
records are looked up live with delivery's resolver (``dns_nameservers``, no
cache): NXDOMAIN, no MX records (the implicit MX: the domain's own address),
a null MX (``0 .``, RFC 7505) and a failed lookup are each named. Then, per
host (best preference first, at most ``max_mx_hosts``), its first address that
``deny_private_destinations`` allows (the refused ones are ``FAIL`` lines, as
delivery would refuse them) gets an SMTP conversation (``smtp.converse``).

When one host went through to ``RCPT``, the other hosts' ``FAIL`` lines are
shown as ``WARN``: delivery falls back to the working host.
"""

from __future__ import annotations

from postline.app.doctor.report import Check, Status, escape, failed, passed, warned
from postline.app.doctor.smtp import Plan, Target, converse
from postline.app.settings import Settings
from postline.delivery.mx import Resolver, RouteError
from postline.delivery.route import DestinationGuard, Route, broker_addresses, route_for

DNS_TIMEOUT = 5.0


async def destination_checks(settings: Settings, address: str, domain: str) -> list[Check]:
    """Route, MX lookup and one conversation per host (module docstring)."""
    delivery = settings.delivery
    route = route_for(domain, delivery)
    resolver = Resolver(
        delivery.dns_nameservers,
        timeout=min(delivery.dns_timeout, DNS_TIMEOUT),
        cache_ttl=0,
        max_mx_hosts=delivery.max_mx_hosts,
    )
    await resolver.start()
    checks: list[Check] = []
    if route.operator_chosen:
        kind = "[delivery] smarthost" if route.smarthost else "[delivery] routes"
        checks.append(passed(f"route {domain}", f"mail goes to {route.nexthop} ({kind})"))
    hosts = await _hosts(resolver, route, checks)
    guard = DestinationGuard(
        delivery.deny_private_destinations and not route.operator_chosen,
        await broker_addresses(settings.broker.urls),
    )
    plan = Plan(
        helo=delivery.helo_name or settings.relay.hostname,
        rcpt=address,
        tls_policy=delivery.tls_domain_policies.get(domain, delivery.tls_policy),
        ca_file=delivery.tls_ca_file,
    )
    sessions = [await _host_checks(resolver, guard, plan, host, route.port) for host in hosts]
    return checks + _fallback(sessions)


async def _hosts(resolver: Resolver, route: Route, checks: list[Check]) -> list[str]:
    """The hosts to talk to, with the MX lookup's line in ``checks``."""
    if not route.lookup_mx:
        return [route.host]
    name = f"mx {route.host}"
    try:
        answer = await resolver.records(route.host, "MX")
        hosts = [host.name for host in await resolver.mx_hosts(route.host)]
    except RouteError as error:
        checks.append(_lookup_failure(name, route.host, error))
        return []
    if not answer.records:
        found = f"no MX records: mail goes to the address of {route.host} itself (implicit MX)"
        checks.append(warned(name, found, f"publish an MX record for {route.host}"))
    else:
        shown = ", ".join(escape(record, 80) for record in sorted(answer.records))
        checks.append(passed(name, f"MX {shown}"))
    return hosts


def _lookup_failure(name: str, domain: str, error: RouteError) -> Check:
    enhanced = error.reply.enhanced
    if enhanced == "5.1.2":
        found = f"{domain} does not exist (NXDOMAIN)"
        return failed(name, found, "check the recipient's domain for typos; mail to it bounces")
    if enhanced == "5.1.10":
        found = f"{domain} has a null MX (0 .): it accepts no mail (RFC 7505)"
        return failed(name, found, "the domain takes no mail; mail to it bounces")
    found = f"lookup failed: {escape(error.reply)}"
    return failed(name, found, "check the resolver (see the dns lines); delivery retries later")


async def _host_checks(
    resolver: Resolver, guard: DestinationGuard, plan: Plan, host: str, port: int
) -> list[Check]:
    try:
        addresses = await resolver.addresses(host)
    except RouteError as error:
        found = f"no address: {escape(error.reply)}"
        return [failed(f"smtp {host}", found, "the MX record names a host that does not resolve")]
    checks: list[Check] = []
    for address in addresses:
        refusal = guard.refusal(address)
        if refusal is None:
            return checks + await converse(Target(host, address, port), plan)
        advice = "delivery refuses it while [delivery] deny_private_destinations = true"
        checks.append(failed(f"smtp {host}[{address}]:{port}", refusal, advice))
    return checks


def _fallback(sessions: list[list[Check]]) -> list[Check]:
    """Every host's lines; FAILs become WARNs when another host accepted the recipient."""

    def accepted(session: list[Check]) -> bool:
        return any(c.check.endswith("RCPT TO") and c.status is Status.PASS for c in session)

    working = any(accepted(session) for session in sessions)
    lines: list[Check] = []
    for session in sessions:
        for check in session:
            if working and not accepted(session) and check.status is Status.FAIL:
                advice = f"another MX host accepts the mail; {check.advice}"
                check = warned(check.check, check.found, advice)
            lines.append(check)
    return lines
