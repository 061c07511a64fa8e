"""Render deploy/nginx/arbiter.conf.template into an nginx site (stdlib only).

    python3 deploy/render_nginx.py --listen 80 --static-root /srv/arbiter/var/static \\
        --server 127.0.0.1:8001 --server 127.0.0.1:8002 > /etc/nginx/sites-available/arbiter

bench/soak.py renders the same template with `site_render`, so the soak runs this config.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx" / "arbiter.conf.template"
SERVER_MARK = "@SERVER@"


def site_render(*, listen: str, static_root: str, servers: list[str]) -> str:
    """The site config: placeholders filled, the upstream's server line once per replica."""
    if not servers:
        raise ValueError("at least one --server (a replica's host:port) is needed")
    lines: list[str] = []
    for line in TEMPLATE.read_text().splitlines():
        if SERVER_MARK in line:
            lines.extend(line.replace(SERVER_MARK, server) for server in servers)
        else:
            lines.append(line.replace("@LISTEN@", listen).replace("@STATIC_ROOT@", static_root))
    text = "\n".join(lines) + "\n"
    # A comment may name a placeholder; a directive must not keep one.
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    left = sorted(set(re.findall(r"@[A-Z_]+@", code)))
    if left:
        raise ValueError(f"the template has placeholders this renderer does not fill: {left}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", default="80", help="nginx `listen` value: a port or addr:port")
    parser.add_argument("--static-root", required=True, help="STATIC_ROOT after collectstatic")
    parser.add_argument(
        "--server", action="append", default=[], help="a replica's host:port (repeat per replica)"
    )
    args = parser.parse_args()
    print(
        site_render(listen=args.listen, static_root=args.static_root, servers=args.server), end=""
    )


if __name__ == "__main__":
    main()
