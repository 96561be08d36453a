"""A throw-away, loopback-only Postfix relay for bench/compare.

``PostfixRelay(workdir, smtp_port, sink_port)`` writes its own ``main.cf`` and
``master.cf`` under ``workdir/etc`` (queue, data and log under ``workdir`` too),
so the machine's own Postfix (``/etc/postfix``, port 25, if running) is never
read or touched. It listens only on ``127.0.0.1:<smtp_port>``, relays every
recipient from 127.0.0.0/8 to ``relayhost = [127.0.0.1]:<sink_port>`` (a
numeric next hop: no DNS, no MX lookups; ``smtpd_peername_lookup = no``), and
logs to ``workdir/maillog`` through postlogd. ``start`` runs
``postfix -c DIR start`` and returns the master's pid; ``stop`` runs
``postfix -c DIR stop``. Postfix's defaults (cleanup's fsync of every queue
file before the 250, process and destination limits) are kept; only
``max_use``/``max_idle`` are raised so that daemons do not exit during a run
(their CPU is read from /proc while they live).

``delays()`` reads queued-to-delivered from the log: the ``delay=`` of each
``status=sent`` line (Postfix's "time from message arrival to last delivery
attempt", 10 ms resolution at these sizes).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

REQUIRED = ("postfix", "postconf", "smtp-source", "smtp-sink")
MASTER = """\
{listen} inet n - n - - smtpd
pickup    unix n - n 60    1 pickup
cleanup   unix n - n -     0 cleanup
qmgr      unix n - n 300   1 qmgr
rewrite   unix - - n -     - trivial-rewrite
bounce    unix - - n -     0 bounce
defer     unix - - n -     0 bounce
trace     unix - - n -     0 bounce
verify    unix - - n -     1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n -     - proxymap
smtp      unix - - n -     - smtp
relay     unix - - n -     - smtp
showq     unix n - n -     - showq
error     unix - - n -     - error
retry     unix - - n -     - error
discard   unix - - n -     - discard
anvil     unix - - n -     1 anvil
scache    unix - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"""
SENT = re.compile(rb"status=sent")
DELAY = re.compile(rb" delay=([0-9.]+),")


def missing_tools() -> list[str]:
    """The Postfix programs this benchmark needs that are not on PATH (or in /usr/sbin)."""
    return [tool for tool in REQUIRED if _which(tool) is None]


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin")


class PostfixRelay:
    """One Postfix instance under ``workdir`` (module docstring)."""

    def __init__(self, workdir: Path, smtp_port: int, sink_port: int) -> None:
        self.workdir = workdir
        self.etc = workdir / "etc"
        self.queue = workdir / "queue"
        self.log = workdir / "maillog"
        self.smtp_port = smtp_port
        self.sink_port = sink_port
        self.pid: int | None = None

    def main_cf(self) -> dict[str, str]:
        """The instance's main.cf parameters."""
        return {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(self.workdir / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "postfix-bench.test",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "relay_domains": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_peername_lookup": "no",
            "relayhost": f"[127.0.0.1]:{self.sink_port}",
            "smtp_dns_support_level": "disabled",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "maillog_file": str(self.log),
            "maillog_file_prefixes": str(self.workdir),
            "max_use": "1000000",
            "max_idle": "3600",
            "biff": "no",
        }

    def configure(self) -> None:
        """Write main.cf and master.cf (the queue directories are made by ``start``)."""
        self.workdir.chmod(0o755)  # postfix's daemons must reach data/ and queue/
        self.etc.mkdir(parents=True, exist_ok=True)
        self.queue.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        shutil.chown(self.workdir / "data", user="postfix")
        lines = [f"{key} = {value}" for key, value in self.main_cf().items()]
        (self.etc / "main.cf").write_text("\n".join(lines) + "\n")
        master = MASTER.format(listen=f"127.0.0.1:{self.smtp_port}")
        (self.etc / "master.cf").write_text(master)

    def start(self, within: float = 30.0) -> int:
        """``postfix -c DIR start``; the master's pid once it listens."""
        self._postfix("start")
        pid_file = self.queue / "pid" / "master.pid"
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if pid_file.exists() and (text := pid_file.read_text().strip()):
                self.pid = int(text)
                return self.pid
            time.sleep(0.1)
        raise RuntimeError(f"postfix did not start (see {self.log})")

    def stop(self, within: float = 30.0) -> None:
        """``postfix -c DIR stop`` (and wait up to ``within`` s until the master is gone)."""
        self._postfix("stop", check=False)
        deadline = time.monotonic() + within
        while self.pid is not None and Path(f"/proc/{self.pid}").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix master {self.pid} did not stop")
            time.sleep(0.1)
        self.pid = None

    def _postfix(self, command: str, check: bool = True) -> None:
        result = subprocess.run(
            [_which("postfix") or "postfix", "-c", str(self.etc), command],
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"postfix {command} failed: {result.stderr.strip()}")

    def delays(self) -> list[float]:
        """Seconds from arrival to delivery of every recipient sent (``delay=``)."""
        if not self.log.exists():
            return []
        found = []
        for line in self.log.read_bytes().splitlines():
            if SENT.search(line) and (match := DELAY.search(line)):
                found.append(float(match.group(1)))
        return found
