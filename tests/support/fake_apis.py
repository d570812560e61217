"""Local HTTP servers that speak the protocols of the remote APIs we call (PubTator3,
plain file downloads), for tests. Loopback only, on free ports, in a thread."""

from __future__ import annotations

import json
import threading
import time
from typing import NamedTuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "sysndd"

# Records shaped like SysNDD's PubTator search page (api_publication_pubtator_search_GET.json).
PUBTATOR_RECORDS = [
    {"pmid": 41433235, "doi": "10.1080/19336950.2025.2602975", "title": "KCNK4 channelopathy",
     "journal": "Channels (Austin)", "date": "2026-12-01T00:00:00Z", "score": 190.5,
     "text_hl": "variants in @GENE_KCNK4 @GENE_50801 @@@KCNK4@@@ cause intellectual disability"},
    {"pmid": 41433127, "doi": "10.1080/19336950.2025.2607247", "title": "SLC12A5 and epilepsy",
     "journal": "Channels (Austin)", "date": "2026-12-01T00:00:00Z", "score": 180.25,
     "text_hl": "@GENE_SLC12A5 @GENE_57468 @@@KCC2@@@ in autism"},
    {"pmid": 41486865, "doi": "10.1080/07853890.2025.2603016", "title": "HADHA deficiency",
     "journal": "Ann Med", "date": "2026-12-01T00:00:00Z", "score": 170.0,
     "text_hl": "@GENE_HADHA @GENE_3030 @@@HADHA@@@"},
    {"pmid": 41454664, "doi": "10.1080/19490976.2025.2606487", "title": "Targeting the microbiome in pediatric migraine",
     "journal": "Gut Microbes", "date": "2026-12-31T00:00:00Z", "score": 208.2409, "text_hl": "NA"},
]


class Request(NamedTuple):
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes


class LocalServer:
    """``handler(request) -> (status, headers, payload)``: a dict or list payload is sent
    as JSON, bytes as they are. Every request is kept in ``requests``."""

    def __init__(self, handler):
        self.handler = handler
        self.requests: list[Request] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, url.path, query, dict(self.headers), body)
                outer.requests.append(request)
                status, headers, payload = outer.handler(request)
                if not isinstance(payload, bytes):
                    payload = json.dumps(payload).encode()
                    headers = {"Content-Type": "application/json", **headers}
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that went away (a killed worker) is not the server's problem

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval: close() waits for the serving loop to notice.
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def pubtator(records=PUBTATOR_RECORDS, per_page: int = 2) -> LocalServer:
    pages = [records[i:i + per_page] for i in range(0, len(records), per_page)]

    def handle(request):
        if request.path.rstrip("/") != "/search":
            return 404, {}, {"detail": "not found"}
        page = int(request.query.get("page", "1"))
        data = pages[page - 1] if page <= len(pages) else []
        return 200, {}, {"meta": {"perPage": [per_page], "currentPage": [page], "totalPages": [len(pages)]}, "data": data}

    return LocalServer(handle)


def files(contents: dict[str, bytes]) -> LocalServer:
    """Serves ``contents[path]`` (read at each request, so it may change), like a
    download site; any other path is a 404."""

    def handle(request):
        if request.path in contents:
            return 200, {"Content-Type": "text/csv"}, contents[request.path]
        return 404, {}, b"not found"

    return LocalServer(handle)


def chat_completions(delay_seconds: float = 0) -> LocalServer:
    """An OpenAI-compatible ``POST /chat/completions`` that answers every prompt with a
    valid cluster summary naming the first line of the prompt it was sent (after
    ``delay_seconds``, like a slow model)."""

    def handle(request):
        if request.method != "POST" or request.path != "/chat/completions":
            return 404, {}, {"error": {"message": "not found"}}
        time.sleep(delay_seconds)
        body = json.loads(request.body)
        prompt = body["messages"][-1]["content"]
        first_line = prompt.strip().splitlines()[0][:80]
        summary = {
            "summary": f"A cluster described from: {first_line}",
            "tags": ["neurodevelopment"],
            "confidence": "medium",
            "key_themes": ["shared function"],
            "key_phenotype_themes": ["shared phenotype"],
            "clinical_pattern": "syndromic",
        }
        return 200, {}, {
            "id": "chatcmpl-test", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": json.dumps(summary)}}],
        }

    return LocalServer(handle)
