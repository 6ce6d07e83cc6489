"""A small client of the admin API (``wolfpack.runtime.daemon.admin``), for the CLI, the demo and tests.

Where it finds a node: ``--api URL`` (or ``WOLFPACK_API``), else ``--config
node.toml``: the daemon writes the URL of its API to ``RUN_DIR/admin.url``
when it starts; the token comes from ``--token`` (``WOLFPACK_TOKEN``) or the
node file's ``admin.token`` / ``admin.token_file``.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from wolfpack.errors import WolfpackError

#: no proxies: the API is on the node itself or on its private network
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ApiError(WolfpackError):
    """The admin API refused a request (``status``) or could not be reached (``status`` 0)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class AdminClient:
    """``url``: ``http://HOST:PORT`` or ``unix:/path/to/admin.sock``."""

    def __init__(self, url: str, token: str = "", timeout_s: float = 20.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, body: Any = None, *, timeout_s: float | None = None) -> Any:
        if self.url.startswith("unix:"):
            return self._unix(method, path, body, timeout_s or self.timeout_s)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with _OPENER.open(req, timeout=timeout_s or self.timeout_s) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            raise ApiError(str(message), exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"cannot reach the admin API at {self.url} ({reason}); is wolfpackd running there? "
                           "Give --api URL or --config NODE.toml", 0) from None

    def _unix(self, method: str, path: str, body: Any, timeout_s: float) -> Any:
        sock_path = self.url[len("unix:"):]
        conn = _UnixConnection(sock_path, timeout_s)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, None if body is None else json.dumps(body).encode(), headers)
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:
            raise ApiError(f"cannot reach the admin API at {sock_path} ({exc}); is wolfpackd running there?", 0) \
                from None
        finally:
            conn.close()
        data = json.loads(raw or b"null")
        if response.status >= 400:
            raise ApiError(str(data.get("error", response.reason) if isinstance(data, dict) else response.reason),
                           response.status)
        return data

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, {} if body is None else body, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


def admin_url_file(run_dir: Path) -> Path:
    """Where a running daemon says where its admin API listens."""
    return run_dir / "admin.url"


def from_node_file(path: Path, token: str | None = None) -> AdminClient:
    """A client for the node a ``node.toml`` describes (its daemon must be running)."""
    from wolfpack.runtime.daemon import config

    cfg = config.load(path)
    url_file = admin_url_file(cfg.run_dir)
    try:
        url = url_file.read_text().strip()
    except OSError:
        raise ApiError(f"{url_file} does not exist: is wolfpackd running with {path}?", 0) from None
    return AdminClient(url, token if token is not None else cfg.token)


def connect(api: str | None, token: str | None, config_path: Path | None) -> AdminClient:
    """The client for ``--api``/``--token``/``--config`` (and ``WOLFPACK_API``/``WOLFPACK_TOKEN``)."""
    import os

    token = token if token is not None else os.environ.get("WOLFPACK_TOKEN")
    api = api or os.environ.get("WOLFPACK_API")
    if api:
        return AdminClient(api, token or "")
    if config_path is not None:
        return from_node_file(config_path, token)
    default = Path("/etc/wolfpack/node.toml")
    if default.exists():
        return from_node_file(default, token)
    raise ApiError("which node? give --api http://HOST:PORT (or WOLFPACK_API) with --token, or --config NODE.toml", 0)
