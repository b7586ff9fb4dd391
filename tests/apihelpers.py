"""Helpers for the API tests: a live `musicvid serve` on loopback, tokens, and a small client."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests

from musicvid_core.api.auth import mint_token
from musicvid_core.api.server import make_server


class Live:
    """`musicvid serve` on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.server, self.app = make_server(settings, host="127.0.0.1", port=0)
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.app.launcher.shutdown(wait=True)

    def token(self, user: str, **kw) -> str:
        return mint_token(self.settings.home, user, **kw)

    def headers(self, user: str, **kw) -> dict:
        return {"Authorization": f"Bearer {self.token(user, **kw)}"}

    # the client side of the flow ----------------------------------------------------------------
    def upload(self, user: str, path: Path, content_type: str = "video/mp4") -> str:
        r = requests.post(f"{self.url}/uploads", json={"content_type": content_type}, headers=self.headers(user))
        assert r.status_code == 201, r.text
        body = r.json()
        with open(path, "rb") as fh:
            up = requests.post(body["upload"]["url"], data=body["upload"]["fields"],
                               files={"file": (Path(path).name, fh, content_type)})
        assert up.status_code == 204, up.text
        return body["s3_url"]

    def submit(self, user: str, **body) -> dict:
        r = requests.post(f"{self.url}/jobs", json=body, headers=self.headers(user))
        assert r.status_code == 202, r.text
        return r.json()

    def wait(self, user: str, job_id: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = requests.get(f"{self.url}/jobs/{job_id}", headers=self.headers(user)).json()
            if job["status"] in ("COMPLETED", "FAILED") or time.monotonic() > deadline:
                return job
            time.sleep(0.2)
