"""Serving a sandbox's Flask app from a daemon thread on loopback, for tests and the demo."""

from __future__ import annotations

import threading

from werkzeug.serving import BaseWSGIServer, make_server


class ServedInThread:
    """start()/stop() and `with` for a sandbox that has an `app` and a requests `_session`."""

    thread_name = "sandbox"
    _server: BaseWSGIServer | None = None
    _thread: threading.Thread | None = None
    url = ""
    netloc = ""

    def start(self, host: str = "127.0.0.1", port: int = 0):
        """Serve in a daemon thread; port 0 picks a free port. Returns self."""
        self._server = make_server(host, port, self.app, threaded=True)
        client_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.netloc = f"{client_host}:{self._server.server_port}"
        self.url = f"http://{self.netloc}"
        self._started()
        # A short poll interval keeps stop() fast (werkzeug's default is 0.5 s).
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def _started(self) -> None:
        """Called once the address is known, before requests are served."""

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None
        self._session.close()

    def __enter__(self):
        return self if self._server else self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
