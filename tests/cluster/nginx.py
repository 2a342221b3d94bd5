"""A real ``nginx`` (Debian's nginx-light) in front of loopback nodes, run from
the shipped ``deploy/nginx/streamserver.conf`` with its two per-deployment
includes written for this machine. Unprivileged: prefix, pid, logs and temporary
files all live in a temporary directory. No mocks: a missing nginx fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import _free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONF_DIR = Path(__file__).resolve().parents[2] / "deploy" / "nginx"


def render(tmp: Path, upstream_ports: list[int], port: int) -> Path:
    """The shipped config in ``tmp`` with upstreams ``127.0.0.1:<port>`` (the
    shipped ``max_fails``/``fail_timeout``) and ``listen 127.0.0.1:<port>``.

    One worker process instead of ``auto``: every nginx worker keeps its own
    round-robin position, so with several a handful of connections need not
    alternate between the nodes; with one they do, which the test checks."""
    text = (CONF_DIR / "streamserver.conf").read_text()
    assert "worker_processes auto;" in text, "deploy/nginx/streamserver.conf changed"
    conf = tmp / "streamserver.conf"
    conf.write_text(text.replace("worker_processes auto;", "worker_processes 1;"))
    (tmp / "streamserver-upstreams.conf").write_text("".join(
        f"server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n" for p in upstream_ports))
    (tmp / "streamserver-listen.conf").write_text(f"listen 127.0.0.1:{port};\n")
    return conf


class Nginx:
    """``nginx -p tmp/ -c tmp/streamserver.conf -g 'daemon off; …'`` on a free
    loopback port; :meth:`stop` ends it (SIGQUIT: graceful, then SIGKILL)."""

    def __init__(self, tmp: Path, upstream_ports: list[int]) -> None:
        if not os.access(NGINX, os.X_OK):
            pytest.fail("nginx not found: the two-node test needs Debian's nginx-light "
                        "(apt-get install nginx-light; scripts/test.sh installs it)",
                        pytrace=False)
        self.tmp = tmp
        self.port = _free_port()
        self.conf = render(tmp, upstream_ports, self.port)
        self.http = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        log = (self.tmp / "access.log").open("wb")
        self.proc = subprocess.Popen(
            [NGINX, "-p", f"{self.tmp}/", "-c", str(self.conf),
             "-g", f"daemon off; pid {self.tmp}/nginx.pid; error_log {self.tmp}/error.log;"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited:\n" + self.error_log())
            try:
                with urllib.request.urlopen(self.http + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not answer:\n" + self.error_log())

    def error_log(self) -> str:
        path = self.tmp / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> str:
        path = self.tmp / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(3)  # SIGQUIT: graceful shutdown
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_nginx(tmp: Path, upstream_ports: list[int]) -> Nginx:
    server = Nginx(tmp, upstream_ports)
    server.start()
    return server
