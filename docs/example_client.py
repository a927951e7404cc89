"""A small PeerGrid API client (Python standard library only) that places orders for a prosumer.

Usage::

    PEERGRID_URL=https://peergrid.example PEERGRID_TOKEN=pgt_... \\
        python docs/example_client.py --community sonnenfeld --side sell \\
        --quantity 1.500 --price 0.1200

The token needs the `read` and `trade` scopes (create it on your account page). Every order
carries an `Idempotency-Key`, so a retry after a network error never places it twice.
It needs nothing but Python: copy it anywhere and run it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


class ApiError(Exception):
    """A 4xx from the API: its stable code, message and per-field messages."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body.get('code')}: {body.get('message')}")
        self.status = status
        self.code = body.get("code", "")
        self.fields: dict[str, list[str]] = body.get("fields", {})


@dataclass
class PeerGridClient:
    base_url: str
    token: str
    timeout_s: float = 10.0
    retries: int = 3

    def __post_init__(self) -> None:
        if urllib.parse.urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"PEERGRID_URL must be an http(s) URL, not {self.base_url!r}")

    def _request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
    ) -> Any:  # fmt: skip
        url = f"{self.base_url.rstrip('/')}/api/v1/{path.lstrip('/')}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        request_headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            request_headers["Content-Type"] = "application/json"
        request_headers.update(headers or {})
        for attempt in range(self.retries + 1):
            # The scheme is checked once, in __post_init__.
            request = urllib.request.Request(url, data, request_headers, method=method)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                    return json.load(response)
            except urllib.error.HTTPError as error:  # a 4xx or 5xx answer
                if error.code == 429 and attempt < self.retries:
                    time.sleep(float(error.headers.get("Retry-After", "1")))
                    continue
                raise ApiError(error.code, json.load(error)) from None
            except OSError:  # no answer at all: refused, reset, timed out
                if attempt == self.retries:
                    raise
                time.sleep(2**attempt)  # the same Idempotency-Key makes the retry safe
        raise RuntimeError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        # One key per logical action, reused by every retry of it.
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        return self._request("POST", path, body=body or {}, headers=headers)

    # --- What a prosumer does ---------------------------------------------------------------
    def my_meter_point(self, community: str) -> dict[str, Any]:
        points = self.get("meter-points/", community=community)["results"]
        if not points:
            raise SystemExit(f"You have no meter point in {community}.")
        return points[0]

    def next_open_interval(self, community: str) -> dict[str, Any]:
        intervals = self.get("intervals/", community=community, state="open", limit=500)
        now = time.time()
        for interval in intervals["results"]:
            gate = interval["gate_closure_at"].replace("Z", "+00:00")
            if datetime.fromisoformat(gate).timestamp() > now + 30:
                return interval
        raise SystemExit(f"No interval of {community} takes orders now.")

    def place_order(
        self, *, community: str, side: str, quantity_kwh: Decimal, price_per_kwh: Decimal,
        interval: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Post an offer (sell) or a request (buy) in the next open interval."""
        meter_point = self.my_meter_point(community)
        interval_id = interval or self.next_open_interval(community)["id"]
        return self.post(
            "postings/",
            {
                "interval": interval_id,
                "meter_point": meter_point["id"],
                "side": side,
                "quantity_kwh": str(quantity_kwh),
                "limit_price_per_kwh": str(price_per_kwh),
            },
        )

    def board(self, community: str) -> list[dict[str, Any]]:
        return self.get("board/", community=community)["results"]

    def cancel(self, posting_id: int) -> dict[str, Any]:
        return self.post(f"postings/{posting_id}/cancel/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--community", required=True)
    parser.add_argument("--side", choices=("buy", "sell"), required=True)
    parser.add_argument("--quantity", type=Decimal, required=True, help="kWh, 3 places")
    parser.add_argument("--price", type=Decimal, required=True, help="per kWh, 4 places")
    args = parser.parse_args(argv)
    client = PeerGridClient(
        base_url=os.environ.get("PEERGRID_URL", "http://127.0.0.1:8000"),
        token=os.environ["PEERGRID_TOKEN"],
    )
    try:
        posting = client.place_order(
            community=args.community, side=args.side,
            quantity_kwh=args.quantity, price_per_kwh=args.price,
        )  # fmt: skip
    except ApiError as error:
        print(f"refused: {error}", file=sys.stderr)
        for field, messages in error.fields.items():
            print(f"  {field}: {' '.join(messages)}", file=sys.stderr)
        return 1
    print(f"posted #{posting['id']}: {posting['side']} {posting['quantity_kwh']} kWh "
          f"at {posting['limit_price_per_kwh']} in interval {posting['interval']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
