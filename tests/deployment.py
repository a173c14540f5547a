"""The deployment docker-compose.yml describes, run without docker.

There is no container engine where the tests run, so the image is built the way the
Dockerfile says, as far as it concerns Wharf: its ENV, the files it COPYs into /app
(a folder of the test's own) and its Python RUN steps. Each service then runs the command
and environment docker-compose.yml gives it, with the addresses of the test's own
PostgreSQL, Redis and S3 server in place of the compose service names. A file the
Dockerfile forgets to copy, a command or a variable that compose gets wrong fails here.
"""

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def dockerfile():
    """The Dockerfile's instructions as (keyword, argument), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, argument = line.partition(" ")
            steps.append((keyword.upper(), argument.strip()))
    return steps


def compose_services(*overrides):
    """docker-compose.yml's services, anchors merged and ``${VAR:-default}`` interpolated
    with the defaults (no .env file); then each override file's environment, as
    ``docker compose -f docker-compose.yml -f OVERRIDE`` merges it."""
    services = _compose_file("docker-compose.yml")["services"]
    for override in overrides:
        for name, service in _compose_file(override)["services"].items():
            merged = services[name].setdefault("environment", {})
            services[name]["environment"] = {**merged, **service.get("environment", {})}
    return services


def _compose_file(name):
    text = (ROOT / name).read_text()
    text = INTERPOLATION.sub(lambda m: m.group(2) or "", text).replace("$$", "$")
    return yaml.safe_load(text)


class Image:
    """The image the Dockerfile builds, staged in ``folder`` (its /app)."""

    def __init__(self, folder):
        self.app = folder / "app"
        self.env = {}
        self.cmd = None
        self.app.mkdir(parents=True)
        for keyword, argument in dockerfile():
            if keyword == "ENV":
                self.env.update(pair.split("=", 1) for pair in shlex.split(argument))
            elif keyword == "COPY":
                *sources, _ = shlex.split(argument)
                for source in sources:
                    self._copy(source)
            elif keyword == "RUN":
                self._run(argument)
            elif keyword == "CMD":
                self.cmd = json.loads(argument)
        self.env = {k: v.replace("/app", str(self.app)) for k, v in self.env.items()}

    def _copy(self, source):
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, self.app / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, self.app / source)

    def _run(self, command):
        """Python steps only: user and folder set-up is the container's business."""
        for step in command.split("&&"):
            words = shlex.split(step)
            assignments = dict(w.split("=", 1) for w in words if re.match(r"^\w+=", w))
            argv = [w for w in words if not re.match(r"^\w+=", w)]
            if argv[:1] != ["python"]:
                continue  # pip install: the tests' own environment has the dependencies
            subprocess.run(
                [sys.executable, *argv[1:]],
                cwd=self.app,
                env={**_base_env(), **self.env, **assignments},
                check=True,
                capture_output=True,
            )

    def argv(self, service):
        """A service's command as argv for this Python (console scripts as ``-m``)."""
        command = service.get("command", self.cmd)
        if isinstance(command, str):
            command = shlex.split(command)
        program, *rest = command
        if program == "python":
            return [sys.executable, *rest]
        return [sys.executable, "-m", program, *rest]


def _base_env():
    import os

    keep = ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT")
    return {k: v for k, v in os.environ.items() if k in keep}


def service_env(image, service, replacements):
    """The environment a compose service's process sees: the image's, the service's, then
    ``replacements`` (the test's own addresses and folders)."""
    env = {**_base_env(), **image.env, **(service.get("environment") or {}), **replacements}
    return {k: str(v) for k, v in env.items() if v is not None}
