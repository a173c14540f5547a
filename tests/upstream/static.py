"""A real upstream on loopback: a static channel directory (as rattler-index leaves it)
served by a plain HTTP server."""

import asyncio
import functools
import os
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import rattler
import rattler_build


class Quiet(SimpleHTTPRequestHandler):
    requests = []  # (method, path) of every request, for the tests to look at
    authorizations = []  # (server port, Authorization header or None) of every request

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        Quiet.requests.append(("GET", self.path))
        port = self.server.server_address[1]
        Quiet.authorizations.append((port, self.headers.get("Authorization")))
        redirect = getattr(self.server, "redirect_to", None)
        if redirect:
            self.send_response(302)
            self.send_header("Location", redirect + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        time.sleep(getattr(self.server, "delay", 0))
        if getattr(self.server, "down", False):
            self.send_error(503, "down for the test")
            return
        if getattr(self.server, "cut_index", False) and self.path.endswith("/repodata.json"):
            # The connection drops halfway through the document.
            data = Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()


class StaticChannel:
    """A channel directory served over HTTP; ``add`` a package and ``index`` it again."""

    def __init__(self, folder, packages):
        self.folder = folder
        self.packages = packages
        (folder / "noarch").mkdir(parents=True)
        handler = functools.partial(Quiet, directory=str(folder))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.down = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, name, version="1.0", subdir="noarch", **kwargs):
        path = self.packages.make(name, version, subdir, **kwargs)
        (self.folder / subdir).mkdir(exist_ok=True)
        target = self.folder / subdir / path.name
        shutil.copy(path, target)
        return target

    def add_large(self, name, size, subdir="noarch"):
        """A package holding ``size`` random bytes (they do not compress)."""
        files = self.folder.parent / f"{name}-files"
        files.mkdir()
        (files / "blob.bin").write_bytes(os.urandom(size))
        output = rattler_build.assemble_package(
            name, "1.0", subdir, "0", self.folder / subdir, files_dir=files, noarch="generic"
        )
        return Path(output.path)

    def index(self):
        """Index the directory; each index gets a later modification time (http.server's
        Last-Modified has whole seconds, and a client revalidates with it)."""
        self.generation = getattr(self, "generation", 0) + 1
        asyncio.run(
            rattler.index.index_fs(self.folder, write_zst=False, write_shards=False, force=True)
        )
        self._bump()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _bump(self):
        moment = time.time() + 2 * self.generation
        for path in self.folder.glob("*/repodata.json"):
            os.utime(path, (moment, moment))
