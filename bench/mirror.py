"""A static mirror served by nginx against the application, for the same paths.

Publishes the real MDD versions 370-374 (../shared/mdd, or ISD_MDD_DIR) into a fresh SQLite
store, writes `isd mirror`, then measures with wrk, in the same run and on the same machine:
the application under gunicorn (gunicorn.conf.py, its default workers) and Debian's nginx
with docs/nginx-mirror.conf rooted at the mirror, for `versions/latest.json`, a small MDD
file and a full snapshot. Both answer the same bytes (checked before measuring); the ratios
printed are nginx over the application. Needs wrk and nginx (apt-get install wrk nginx-light).

    .venv/bin/python bench/mirror.py [--seconds 10] [--connections 16] [--database URL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from run import free_port, process, wait_for

from isd_service import PROJECT_ROOT
from isd_service.entrypoints.app import create_app

MDD_DIR = Path(os.environ.get("ISD_MDD_DIR", PROJECT_ROOT.parent / "shared" / "mdd"))
UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def isd(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([str(Path(sys.executable).parent / "isd"), *args], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"isd {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
    return out.stdout


def nginx_conf(work: Path, root: Path, port: int) -> Path:
    server = (PROJECT_ROOT / "docs" / "nginx-mirror.conf").read_text()
    server = server.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    server = server.replace("root /srv/isd-mirror;", f"root {root};")
    (work / "server.conf").write_text(server)
    temps = " ".join(f"{kind}_temp_path {work / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = work / "nginx.conf"
    conf.write_text(
        f"daemon off;\nworker_processes auto;\npid {work / 'nginx.pid'};\n"
        f"error_log {work / 'error.log'};\nevents {{ worker_connections 1024; }}\n"
        f"http {{ access_log off; sendfile on; {temps} include {work / 'server.conf'}; }}\n")
    return conf


def wrk(url: str, seconds: int, connections: int) -> tuple[float, float]:
    """Requests/s and MB/s (10^6 bytes) of wrk against ``url``."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"{url}: answers that are not 200:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out)[1])  # type: ignore[index]
    amount, unit = re.search(r"Transfer/sec:\s+([0-9.]+)(\w+)", out).groups()  # type: ignore[union-attr]
    return rps, float(amount) * UNITS[unit] / 1e6


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return bytes(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--database", default=None, help="default: a new SQLite file")
    args = parser.parse_args()
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install wrk nginx-light)")
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        raise SystemExit("nginx is not installed (apt-get install nginx-light)")
    tmp = Path(tempfile.mkdtemp(prefix="isd-mirror-bench-"))
    tmp.chmod(0o755)  # nginx's workers read the mirror as another user
    url = args.database or f"sqlite:///{tmp / 'isd.sqlite3'}"
    env = {**os.environ, "ISD_DATABASE_URL": url, "ISD_DOWNLOADS_DIR": str(tmp / "downloads"),
           "ISD_LOG_LEVEL": "warning"}
    env.pop("ISD_WORKERS", None)  # the application with its default workers
    create_app({"DATABASE_URL": url})  # fails early on a bad URL
    isd(env, "db", "upgrade")
    isd(env, "import-archive", str(MDD_DIR))
    root = tmp / "mirror"
    print(isd(env, "mirror", str(root)).strip())
    latest = json.loads((root / "api/v1/versions/latest.json").read_text())["version"]
    paths = {"versions/latest.json": "/api/v1/versions/latest.json",
             "a small MDD file (GSP_Group, 14 rows)":
                 f"/api/v1/versions/{latest}/mdd/GSP_Group_{latest}.csv",
             "full snapshot (ndjson)": f"/api/v1/versions/{latest}/snapshot.ndjson"}
    app_port, nginx_port = free_port(), free_port()
    env["ISD_BIND"] = f"127.0.0.1:{app_port}"
    work = tmp / "nginx"
    work.mkdir()
    conf = nginx_conf(work, root, nginx_port)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python "
          f"{platform.python_version()}; wrk -t2 -c{args.connections} -d{args.seconds}s; "
          f"the application: gunicorn with its default workers on {url.split(':')[0]}")
    rows = []
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "gunicorn.conf.py")]
    with process(gunicorn, env, tmp / "gunicorn.log"), \
            process([nginx, "-c", str(conf), "-p", str(work)], dict(os.environ),
                    tmp / "nginx.log"):
        wait_for(app_port, "/api/v1/versions/latest.json")
        wait_for(nginx_port, "/api/v1/versions/latest.json")
        for name, path in paths.items():
            app_body = fetch(f"http://127.0.0.1:{app_port}{path}")
            assert app_body == fetch(f"http://127.0.0.1:{nginx_port}{path}"), path
            app_rps, app_mbs = wrk(f"http://127.0.0.1:{app_port}{path}", args.seconds,
                                   args.connections)
            mirror_rps, mirror_mbs = wrk(f"http://127.0.0.1:{nginx_port}{path}",
                                         args.seconds, args.connections)
            rows.append((f"{name}, {len(app_body):,} bytes", app_rps, mirror_rps, app_mbs,
                         mirror_mbs))
    print("\n| path | application req/s | nginx on the mirror req/s | nginx / application "
          "| application MB/s | nginx MB/s |")
    print("|---|---|---|---|---|---|")
    for name, app_rps, mirror_rps, app_mbs, mirror_mbs in rows:
        print(f"| {name} | {app_rps:,.0f} | {mirror_rps:,.0f} | {mirror_rps / app_rps:,.1f}x "
              f"| {app_mbs:,.1f} | {mirror_mbs:,.1f} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
