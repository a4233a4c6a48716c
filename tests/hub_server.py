"""A stand-in for the Hugging Face Hub on localhost (dataset repos, one commit each), so that
huggingface_hub's online download path runs without the network: point HF_ENDPOINT at it.

It answers the requests `snapshot_download` makes: the repo info
(/api/datasets/<repo>/revision/<rev>), the recursive file tree (/api/datasets/<repo>/tree/<rev>)
and each file (HEAD/GET /datasets/<repo>/resolve/<rev>/<path>, with Range for resumes). `*.tar`
files are described as LFS files (sha256 ETag), the others as git blobs (sha1). Every request
is recorded in `requests` as 'METHOD /path'.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


class HubServer:
    """Serve `repos` (repo id -> {path: bytes}) at `endpoint` until close()."""

    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos = repos
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                hub._answer(self, head=False)

            def do_HEAD(self):
                hub._answer(self, head=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def _send(handler, code: int, body: bytes = b"", headers: dict | None = None,
              head: bool = False) -> None:
        handler.send_response(code)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if not head:
            handler.wfile.write(body)

    def _tree(self, files: dict[str, bytes]) -> list[dict]:
        out = []
        for path, data in files.items():
            entry = {"type": "file", "path": path, "size": len(data),
                     "oid": hashlib.sha1(data).hexdigest()}
            if path.endswith(".tar"):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                "pointerSize": 130}
            out.append(entry)
        return out

    def _answer(self, handler, head: bool) -> None:
        url = urllib.parse.urlparse(handler.path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        self.requests.append(f"{'HEAD' if head else 'GET'} {url.path}")
        missing = {"X-Error-Code": "RepoNotFound"}
        if parts[:2] == ["api", "datasets"] and len(parts) >= 5:
            files = self.repos.get("/".join(parts[2:4]))
            if files is None:
                return self._send(handler, 404, b'{"error": "Repository not found"}', missing)
            if parts[4] == "revision":
                info = {"id": "/".join(parts[2:4]), "sha": COMMIT,
                        "siblings": [{"rfilename": p} for p in files]}
                return self._send(handler, 200, json.dumps(info).encode(),
                                  {"Content-Type": "application/json"})
            if parts[4] == "tree":
                return self._send(handler, 200, json.dumps(self._tree(files)).encode(),
                                  {"Content-Type": "application/json"})
        if parts[0] == "datasets" and len(parts) >= 6 and parts[3] == "resolve":
            files = self.repos.get("/".join(parts[1:3]))
            if files is None:
                return self._send(handler, 404, b"", missing, head)
            data = files.get("/".join(parts[5:]))
            if data is None:
                return self._send(handler, 404, b"", {"X-Error-Code": "EntryNotFound"}, head)
            algo = hashlib.sha256 if parts[-1].endswith(".tar") else hashlib.sha1
            headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{algo(data).hexdigest()}"'}
            ranged = handler.headers.get("Range")
            if ranged and not head:
                start = int(ranged.split("=", 1)[1].split("-", 1)[0])
                return self._send(handler, 206, data[start:], headers)
            return self._send(handler, 200, data, headers, head)
        self._send(handler, 404, b"", {}, head)
