"""A local S3-compatible server for the tests (moto's server mode), run as ``python -m tests.s3_server``.

It binds a free port on 127.0.0.1, prints ``port <N>`` on one line, and serves until it is terminated or its
standard input closes (so it never outlives a test session killed without cleaning up). moto
checks a conditional write (``If-None-Match: *``) and stores the object in two steps, without a lock, while
S3 itself decides them as one: requests are served one at a time here, so that the server arbitrates two
writers racing on one name as S3 does, and the tests see our code's behaviour rather than moto's threading.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

HOST = "127.0.0.1"


def serialized(app: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    """The WSGI application ``app``, answering one request at a time (its whole response under a lock)."""
    lock = threading.Lock()

    def serve_one(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            return list(app(environ, start_response))

    return serve_one


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not one line per request
    server = make_server(
        HOST,
        0,
        serialized(DomainDispatcherApplication(create_backend_app)),
        threaded=True,  # connections are kept alive on their threads; requests still run one at a time
        request_handler=MotoRequestHandler,
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()), daemon=True).start()
    sys.stdout.write(f"port {server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
