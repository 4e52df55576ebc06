"""A real S3 protocol server on loopback for the artifact store's tests: moto's
standalone server (``moto.server.ThreadedMotoServer``, a werkzeug HTTP server in a
thread of the test process), never a mocked client. Its buckets live in moto's in-process
backends, so stopping and starting it again on the same port keeps them: a store outage
and its recovery. ``CuttingProxy`` sits in front of it and closes every connection once
it has carried a given number of request bytes: an upload cut off mid-way, on a real
socket. The fixtures are in ``tests/conftest.py`` (``s3_server``, ``s3_store``)."""

from __future__ import annotations

import logging
import socket
import threading
import time

from moto.server import ThreadedMotoServer

from tests.processes import free_port


class S3Server:
    """moto's S3 server on ``127.0.0.1:<port>``; ``stop()`` / ``start()`` at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per S3 request
        deadline = time.monotonic() + 10
        while True:
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            try:
                server.start()
                break
            except OSError:  # the port still held by the previous run's socket
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


class CuttingProxy:
    """A TCP proxy to ``target_port`` that closes a connection (both ways) once the
    client has sent ``budget`` bytes on it: small requests pass, a large upload is cut."""

    def __init__(self, target_port: int, budget: int) -> None:
        self.target_port = target_port
        self.budget = budget
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cuts = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        sent = 0
        try:
            while chunk := source.recv(65536):
                if counted and sent + len(chunk) > self.budget:
                    sink.sendall(chunk[: self.budget - sent])
                    self.cuts += 1
                    break
                sink.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
