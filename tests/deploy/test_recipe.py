"""deploy/: the compose file, the systemd units and the nginx site agree with the README and
with the processes config/run.py knows how to start."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from config.run import process_parser, web_command
from deploy.render_nginx import site_render
from tests.helpers import process_stop

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def compose() -> dict[str, dict[str, object]]:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return dict(document["services"])


def readme_process_table() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Processes\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def routed_queues() -> set[str]:
    routes = settings.CELERY_TASK_ROUTES.values()
    return {route["queue"] for route in routes} | {settings.CELERY_TASK_DEFAULT_QUEUE}


def test_the_compose_services_are_the_readme_process_table() -> None:
    header, _, *rows = readme_process_table()
    column = header.index("`deploy/compose.yaml` service")
    named = {name for row in rows for name in re.findall(r"`([^`]+)`", row[column])}
    assert named == set(compose())


def test_compose_runs_config_run_processes_one_worker_per_queue_and_one_beat() -> None:
    services = compose()
    parser = process_parser()
    started: dict[str, list[str]] = {}
    for name, service in services.items():
        command = service.get("command")
        if isinstance(command, list) and command[:3] == ["python", "-m", "config.run"]:
            args = parser.parse_args(command[3:])
            started[name] = [args.process, getattr(args, "queues", "")]
    workers = sorted(queues for process, queues in started.values() if process == "worker")
    assert workers == sorted(routed_queues())
    assert [name for name, (process, _) in started.items() if process == "beat"] == ["beat"]
    assert started["web"][0] == "web"
    assert services["web"]["deploy"] == {"replicas": 2}


def test_the_systemd_units_start_config_run_processes_for_every_queue() -> None:
    parser = process_parser()
    for unit in (DEPLOY / "systemd").glob("arbiter-*.service"):
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart=") and "config.run" in line:
                argv = shlex.split(line.removeprefix("ExecStart="))
                # The instance name (%i) stands for a port or a queue.
                parser.parse_args([arg.replace("%i", "8001") for arg in argv[3:]])
    target = (DEPLOY / "systemd" / "arbiter.target").read_text()
    assert set(re.findall(r"arbiter-worker@(\w+)\.service", target)) == routed_queues()
    assert len(re.findall(r"arbiter-web@\d+\.service", target)) >= 2


def test_a_worker_for_an_unknown_queue_is_refused_by_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "config.run", "worker", "generaton"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "no task goes to the queue generaton" in result.stderr
    assert "default, generation, training" in result.stderr


def test_the_nginx_site_has_a_server_line_per_replica_with_passive_health_checks() -> None:
    site = site_render(listen="8080", static_root="/srv/static", servers=["a:1", "b:2"])
    servers = re.findall(r"^\s*server (\S+) max_fails=\d+ fail_timeout=\d+s;$", site, re.M)
    assert servers == ["a:1", "b:2"]
    assert "proxy_next_upstream error timeout http_502 http_504;" in site
    assert "alias /srv/static/;" in site
    assert "@" not in site.replace("@ signs", "")


def test_a_site_without_replicas_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one --server"):
        site_render(listen="80", static_root="/srv/static", servers=[])


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed here")
def test_nginx_accepts_the_rendered_site(tmp_path: Path) -> None:
    site = tmp_path / "arbiter.conf"
    site.write_text(site_render(listen="127.0.0.1:1", static_root=str(tmp_path),
                                servers=["127.0.0.1:2", "127.0.0.1:3"]))  # fmt: skip
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path / 'nginx.pid'};\nevents {{}}\n"
        f"http {{ include /etc/nginx/mime.types; include {site}; }}\n"
    )
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "err.log")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_config_run_web_becomes_the_replica_that_serves(tmp_path: Path) -> None:
    """What the units and compose run: the process execs uvicorn (same pid) and serves."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["ARBITER_VAR_DIR"] = str(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "config.run", "web", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        status = None
        while status is None and time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    status = r.status
            except urllib.error.HTTPError as error:
                status = error.code  # 503: no worker here, but the replica answers
            except OSError:
                time.sleep(0.2)
        assert status in (200, 503)
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert b"uvicorn" in cmdline and b"config.asgi:application" in cmdline
    finally:
        process_stop(process)


def test_a_replica_keeps_an_idle_connection_longer_than_nginx_does() -> None:
    # Otherwise nginx can send a request on a connection the replica is closing: a 502.
    site = site_render(listen="80", static_root="/srv/static", servers=["a:1"])
    found = re.search(r"^\s*keepalive_timeout (\d+)s;$", site, re.M)
    assert found is not None
    command = web_command(host="127.0.0.1", port=8000)
    assert int(command[command.index("--timeout-keep-alive") + 1]) > int(found.group(1))
