"""An authoritative test DNS server on loopback (UDP and TCP), built with dnspython.

Tests point ``[delivery] dns_nameservers`` at ``server.address`` and script the
answers::

    with DnsServer() as dns:
        dns.add_mx("example.test", 10, "mx.example.test")
        dns.add_a("mx.example.test", "127.0.0.1")
        dns.servfail("broken.test")
        dns.timeout("tarpit.test")      # queries are dropped silently
        dns.add_txt("s1._domainkey.example.test", "v=DKIM1; k=rsa; p=...")
        settings = ...(delivery={"dns_nameservers": [dns.address]})

Answers:

* a name with records of the asked type: NOERROR with those records (AA set);
  a CNAME is returned, and followed within the zone, for any other type;
* a known name without records of the asked type: NOERROR/NODATA;
* an unknown name, or one marked ``nxdomain``: NXDOMAIN;
* ``servfail(name)``: SERVFAIL; ``timeout(name)``: no answer at all;
  ``clear(name)`` forgets everything about ``name``;
* with ``authenticated`` set, every NOERROR answer carries the AD bit, as a
  validating resolver's answers for a signed zone do (the test stands in for
  that resolver; the records are not really signed); ``insecure(name)``
  leaves the bit off for ``name`` only.

Names are case-insensitive with an optional trailing dot. Records may be added
while the server runs (a lock guards the tables). ``queries`` lists every
``(name, rdtype)`` received, names lower-case without the trailing dot.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from dataclasses import dataclass, field
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

_TTL = 60


def _key(name: str) -> str:
    return name.lower().rstrip(".")


@dataclass
class _Zone:
    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    special: dict[str, str] = field(default_factory=dict)  # name -> servfail|timeout|nxdomain


class DnsServer:
    """See the module docstring. ``address`` is ``"127.0.0.1:PORT"``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.queries: list[tuple[str, str]] = []
        self.authenticated = False
        self._insecure: set[str] = set()
        self._zone = _Zone()
        self._lock = threading.Lock()
        self._udp: socketserver.ThreadingUDPServer | None = None
        self._tcp: socketserver.ThreadingTCPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- records ---------------------------------------------------------------------------
    def add_mx(self, domain: str, preference: int, exchange: str) -> None:
        target = exchange if exchange.endswith(".") else exchange + "."
        self._add(domain, "MX", f"{preference} {target}")

    def add_a(self, name: str, ip: str) -> None:
        self._add(name, "A", ip)

    def add_aaaa(self, name: str, ip: str) -> None:
        self._add(name, "AAAA", ip)

    def add_cname(self, name: str, target: str) -> None:
        self._add(name, "CNAME", target if target.endswith(".") else target + ".")

    def add_txt(self, name: str, text: str) -> None:
        """One TXT record holding ``text`` (split into 255-byte strings as needed)."""
        chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
        self._add(name, "TXT", " ".join('"' + c.replace('"', '\\"') + '"' for c in chunks))

    def add_tlsa(self, name: str, record: str) -> None:
        """A TLSA record such as ``"3 1 1 <hex>"`` at ``name`` (``_25._tcp.mx...``)."""
        self._add(name, "TLSA", record)

    def insecure(self, name: str) -> None:
        """Answers for ``name`` never carry the AD bit, even while ``authenticated``."""
        with self._lock:
            self._insecure.add(_key(name))

    def null_mx(self, domain: str) -> None:
        """RFC 7505: ``MX 0 .`` says the domain accepts no mail."""
        self._add(domain, "MX", "0 .")

    def servfail(self, name: str) -> None:
        self._mark(name, "servfail")

    def timeout(self, name: str) -> None:
        self._mark(name, "timeout")

    def nxdomain(self, name: str) -> None:
        self._mark(name, "nxdomain")

    def clear(self, name: str) -> None:
        """Forget every record and mark (servfail, timeout, nxdomain) of ``name``."""
        key = _key(name)
        with self._lock:
            self._zone.special.pop(key, None)
            for record in [k for k in self._zone.records if k[0] == key]:
                del self._zone.records[record]

    def _add(self, name: str, rdtype: str, text: str) -> None:
        with self._lock:
            self._zone.records.setdefault((_key(name), rdtype), []).append(text)

    def _mark(self, name: str, what: str) -> None:
        with self._lock:
            self._zone.special[_key(name)] = what

    # -- serving ---------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """``host:port`` as ``[delivery] dns_nameservers`` accepts it."""
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        server = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                answer = server.answer(data)
                if answer is not None:
                    sock.sendto(answer, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._serve_tcp(self.request)

        wanted = self.port
        for _ in range(20):  # port 0: find one free for both UDP and TCP
            self._udp = socketserver.ThreadingUDPServer((self.host, wanted), Udp)
            self._udp.daemon_threads = True
            self.port = self._udp.server_address[1]
            try:
                self._tcp = socketserver.ThreadingTCPServer((self.host, self.port), Tcp)
            except OSError:
                self._udp.server_close()
                if wanted:
                    raise
                continue
            self._tcp.daemon_threads = True
            break
        else:
            raise OSError("no port free for both UDP and TCP")
        for srv in (self._udp, self._tcp):
            thread = threading.Thread(target=srv.serve_forever, args=(0.1,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        for srv in (self._udp, self._tcp):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()
        self._udp = self._tcp = None

    def __enter__(self) -> DnsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve_tcp(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            while True:
                header = _read_exactly(conn, 2)
                if header is None:
                    return
                data = _read_exactly(conn, struct.unpack("!H", header)[0])
                if data is None:
                    return
                answer = self.answer(data)
                if answer is not None:
                    conn.sendall(struct.pack("!H", len(answer)) + answer)
        except OSError:
            return

    # -- answering -------------------------------------------------------------------------
    def answer(self, wire: bytes) -> bytes | None:
        """The response to one query in wire format, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        question = query.question[0]
        name = _key(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((name, rdtype))
            special = self._zone.special.get(name)
            records = dict(self._zone.records)
            secure = self.authenticated and name not in self._insecure
        if special == "timeout":
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if special == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif special == "nxdomain" or not any(key[0] == name for key in records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            self._fill(response, records, name, rdtype)
            if secure:
                response.flags |= dns.flags.AD
        return response.to_wire()

    def _fill(
        self,
        response: dns.message.Message,
        records: dict[tuple[str, str], list[str]],
        name: str,
        rdtype: str,
    ) -> None:
        for _ in range(8):  # follow CNAME chains inside the zone, bounded
            texts = records.get((name, rdtype))
            if texts:
                response.answer.append(_rrset(name, rdtype, texts))
                return
            cname = records.get((name, "CNAME"))
            if not cname:
                return
            response.answer.append(_rrset(name, "CNAME", cname[:1]))
            name = _key(cname[0])
            if not any(key[0] == name for key in records):
                return


def _rrset(name: str, rdtype: str, texts: list[str]) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(
        dns.name.from_text(name), dns.rdataclass.IN, dns.rdatatype.from_text(rdtype)
    )
    for text in texts:
        rrset.add(dns.rdata.from_text(dns.rdataclass.IN, rrset.rdtype, text), _TTL)
    return rrset


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    chunks = b""
    while len(chunks) < size:
        chunk = conn.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return chunks
