"""The web container's health check: `/healthz` asked the way the TLS proxy asks it.

Production settings answer only requests for an allowed host that came in over HTTPS; anything
else gets 400 or a redirect to https. The proxy (Caddy, see deploy/Caddyfile) passes the
visitor's Host on and sets `X-Forwarded-Proto: https`, so this check does the same: the first of
ALLOWED_HOSTS as Host, the forwarded scheme, straight to gunicorn on 127.0.0.1:$PORT (8000).
Standard library only, so it starts in well under the check's timeout. Exit 0 when healthy.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def health_host() -> str:
    hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
    host = hosts[0] if hosts else "localhost"
    # ".peergrid.example" allows the domain and its subdomains; "*" allows any host.
    return "localhost" if host == "*" else host.lstrip(".")


def main() -> int:
    port = int(os.environ.get("PORT", "8000"))
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz",
        headers={"Host": health_host(), "X-Forwarded-Proto": "https"},
    )
    try:
        # A fixed http URL on loopback.
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: /healthz answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
