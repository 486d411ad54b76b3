"""The Dockerfile, .dockerignore and docker-compose.yml say what matters, checked without a container engine.

No Docker engine runs where the tests run, so the image is not built here. What can be
checked is: the Dockerfile's structure (a build stage, a slim final stage that runs as a
non-root user, a health check, ``initserve serve``); that every ``INITSERVE_*`` variable it or
the compose file sets is a real, valid setting; that the health check command works (it is
run against a live server); and that the compose file, the nginx files and the image agree
on names, ports, paths and limits. The compose file is read as text (PyYAML is not a
dependency): the checks look inside one service's block at a time.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from initserve.api.settings import Settings
from initserve.testing import free_port, live_server

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
NGINX_DIR = ROOT / "deploy" / "nginx"


@dataclass
class Stage:
    """One ``FROM`` of a Dockerfile and the instructions under it, as ``(INSTRUCTION, arguments)``."""

    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == instruction]

    def last(self, instruction: str) -> str:
        found = self.all(instruction)
        assert found, f"no {instruction} in the stage FROM {self.image}"
        return found[-1]

    def env(self) -> dict[str, str]:
        """Every ``ENV key=value`` of the stage."""
        pairs = (word.split("=", 1) for arguments in self.all("ENV") for word in shlex.split(arguments))
        return {key: value for key, value in pairs}


def instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions, with comments dropped and ``\\`` continuations joined."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending.strip())
        pending = ""
    return [(head.upper(), rest.strip()) for head, _, rest in (line.partition(" ") for line in logical)]


def stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ``ARG`` defaults and the stages, with ``${ARG}`` in image names expanded."""
    args: dict[str, str] = {}
    found: list[Stage] = []
    for name, arguments in instructions(text):
        if name == "FROM":
            words = arguments.split()
            image = re.sub(r"\$\{(\w+)\}", lambda match: args[match.group(1)], words[0])
            found.append(Stage(image, words[2] if len(words) == 3 and words[1].upper() == "AS" else None))
        elif found:
            found[-1].instructions.append((name, arguments))
        elif name == "ARG":
            key, _, value = arguments.partition("=")
            args[key] = value
    return args, found


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    return stages(DOCKERFILE.read_text())[1]


def healthcheck_command(stage: Stage) -> list[str]:
    """The exec-form command of the stage's ``HEALTHCHECK ... CMD [...]``."""
    command = stage.last("HEALTHCHECK").partition("CMD ")[2]
    assert command.startswith("["), "exec form: no shell in between, and this test runs it as it is"
    decoded: list[str] = json.loads(command)
    return decoded


def setting_errors(variables: dict[str, str]) -> list[str]:
    """What is wrong with these ``INITSERVE_*`` variables: unknown names, or values Settings refuses."""
    fields = {name.upper() for name in Settings.model_fields}
    unknown = [name for name in variables if name.removeprefix("INITSERVE_") not in fields]
    if unknown:
        return [f"not a setting: {name}" for name in unknown]
    try:
        Settings.model_validate({name.removeprefix("INITSERVE_").lower(): value for name, value in variables.items()})
    except ValueError as error:
        return [str(error)]
    return []


def service_block(name: str) -> str:
    """The lines of one service of docker-compose.yml (services are two-space indented keys)."""
    text = COMPOSE.read_text()
    match = re.search(rf"^  {name}:\n((?:(?:    .*)?\n)*)", text, re.MULTILINE)
    assert match, f"no service {name} in docker-compose.yml"
    return match.group(1)


def compose_environment(block: str) -> dict[str, str]:
    return dict(re.findall(r'^\s+(INITSERVE_\w+): "?([^"\n]*)"?$', block, re.MULTILINE))


def test_the_image_is_built_in_one_stage_and_run_from_a_slim_one(dockerfile: list[Stage]) -> None:
    assert len(dockerfile) >= 2
    build, final = dockerfile[0], dockerfile[-1]
    assert build.name, "the build stage is named, for COPY --from"
    assert any(re.search(r"\bpip install \.$", run) for run in build.all("RUN")), "pip install . (not -e, no extras)"
    assert any("build-essential" in run for run in build.all("RUN")), "a C compiler for initserve.core._kernel"
    assert "slim" in final.image
    assert [copy for copy in final.all("COPY") if copy.startswith(f"--from={build.name} ")], "the venv comes from it"
    assert not any("apt-get install" in run for run in final.all("RUN")), "nothing installed in the final stage"


def test_the_final_stage_runs_initserve_as_a_non_root_user(dockerfile: list[Stage]) -> None:
    final = dockerfile[-1]
    user = final.last("USER").split(":")[0]
    assert user not in ("root", "0")
    assert json.loads(final.last("CMD")) == ["initserve", "serve"]
    env = final.env()
    assert env["INITSERVE_HOST"] == "0.0.0.0"  # reachable from outside the container
    assert final.last("EXPOSE") == env["INITSERVE_PORT"] == "8000"
    assert int(env["INITSERVE_WORKERS"]) >= 1


def test_every_initserve_variable_is_a_valid_setting(dockerfile: list[Stage]) -> None:
    for stage in dockerfile:
        variables = {name: value for name, value in stage.env().items() if name.startswith("INITSERVE_")}
        assert not setting_errors(variables)
    compose = compose_environment(service_block("initserve"))
    assert "INITSERVE_WORKERS" in compose
    assert not setting_errors(compose)
    assert setting_errors({"INITSERVE_MAX_ELEMENT": "1"})  # the check itself catches a typo


def test_the_healthcheck_command_passes_against_a_live_server_and_fails_without_one(dockerfile: list[Stage]) -> None:
    command = healthcheck_command(dockerfile[-1])
    assert command[0] == "python"  # the venv's, first on the image's PATH
    run = [sys.executable, *command[1:]]

    def exit_code(port: int) -> int:
        env = {**os.environ, "INITSERVE_PORT": str(port)}
        return subprocess.run(run, env=env, capture_output=True, timeout=30, check=False).returncode

    with live_server() as url:
        assert exit_code(int(url.rsplit(":", 1)[1])) == 0
    assert exit_code(free_port()) != 0


def test_dockerignore_sends_only_what_the_build_copies(dockerfile: list[Stage]) -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "exclude everything (.venv, .git, caches, CI clones), then allow"
    allowed = {pattern.removeprefix("!").rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied = {source.rstrip("/").removeprefix("./") for copy in dockerfile[0].all("COPY")
              for source in copy.split()[:-1] if not source.startswith("--")}
    assert copied <= allowed
    assert all((ROOT / path).exists() for path in copied)
    assert "**/*.so" in patterns  # a kernel compiled for the host's Python stays out of the image


def test_compose_runs_replicas_behind_nginx_with_the_repos_configuration(dockerfile: list[Stage]) -> None:
    initserve, nginx = service_block("initserve"), service_block("nginx")
    replicas = re.search(r"^\s+replicas: (\d+)$", initserve, re.MULTILINE)
    assert replicas and int(replicas.group(1)) >= 2
    assert re.search(r"^\s+build: \.$", initserve, re.MULTILINE)
    healthcheck = re.search(r"^\s+test: (\[.*\])$", initserve, re.MULTILINE)
    assert healthcheck and json.loads(healthcheck.group(1)) == ["CMD", *healthcheck_command(dockerfile[-1])]

    assert re.search(r"^\s+image: nginx:1\.2[7-9]", nginx, re.MULTILINE)
    assert re.search(r"condition: service_healthy", nginx)
    mounts = dict(re.findall(r"^\s+- \./(deploy/nginx):(\S+?):ro$", nginx, re.MULTILINE))
    assert mounts, "deploy/nginx is mounted read-only"
    target = mounts["deploy/nginx"]
    command = json.loads(re.findall(r"^\s+command: (\[.*\])$", nginx, re.MULTILINE)[0])
    assert command[command.index("-c") + 1] == f"{target}/nginx.conf"
    prefix = command[command.index("-p") + 1]
    cache = re.search(r"^proxy_cache_path (\S+) ", (NGINX_DIR / "initserve.conf").read_text(), re.MULTILINE)
    assert cache and re.search(rf"^\s+- nginx-cache:{re.escape(prefix + cache.group(1))}$", nginx, re.MULTILINE)
    for included in ("initserve.conf", "initserve.upstream.conf", "initserve.listen.conf"):
        assert (NGINX_DIR / included).is_file()


def test_compose_nginx_and_the_image_agree_on_ports_names_and_limits(dockerfile: list[Stage]) -> None:
    upstream = (NGINX_DIR / "initserve.upstream.conf").read_text()
    port = dockerfile[-1].env()["INITSERVE_PORT"]
    assert re.search(rf"^server initserve:{port}\b", upstream, re.MULTILINE)  # the compose service's name
    listen = re.search(r"^listen (\d+);", (NGINX_DIR / "initserve.listen.conf").read_text(), re.MULTILINE)
    assert listen and re.search(rf'^\s+- "\d+:{listen.group(1)}"$', service_block("nginx"), re.MULTILINE)

    body = re.search(r"client_max_body_size (\d+)([kmg]?);", (NGINX_DIR / "initserve.conf").read_text())
    assert body
    nginx_limit = int(body.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[body.group(2)]
    uploads = compose_environment(service_block("initserve")).get("INITSERVE_MAX_UPLOAD_BYTES")
    assert int(uploads or Settings().max_upload_bytes) == nginx_limit


def test_the_compose_nginx_conf_is_valid_nginx(tmp_path: Path) -> None:
    """``nginx -t`` on deploy/nginx/ as compose mounts it.

    Only the upstream is local (no host "initserve" resolves here) and the pid file is under
    the temporary directory (the compiled-in /run/nginx.pid needs root).
    """
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if binary is None:
        pytest.skip("nginx is not installed")
    conf_dir = tmp_path / "conf"
    shutil.copytree(NGINX_DIR, conf_dir)
    (conf_dir / "initserve.upstream.conf").write_text(f"server 127.0.0.1:{free_port()};\n")
    result = subprocess.run([binary, "-t", "-q", "-p", f"{tmp_path}/", "-c", str(conf_dir / "nginx.conf"),
                             "-e", str(tmp_path / "error.log"), "-g", f"pid {tmp_path}/nginx.pid;"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
