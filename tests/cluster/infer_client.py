"""A streaming client for the infer cluster tests, run as a process inside the client host:

    python -m tests.cluster.infer_client URL PAYLOAD_JSON

It posts PAYLOAD_JSON to URL/coordinator/infer and prints, one line each, as they arrive:
`coordinator ADDRESS` (the `x-ishan-coordinator` header nginx adds; empty when the URL is a
coordinator's own), then `data JSON` for every server-sent event, and last `end` when the
response ended, or `error REPR` when the connection failed (or `error STATUS BODY` when the
answer is not a stream).
"""

from __future__ import annotations

import json
import sys

import httpx


def main(url: str, payload: str) -> None:
    try:
        with httpx.stream(
            "POST", f"{url}/coordinator/infer", json=json.loads(payload), timeout=60
        ) as response:
            print("coordinator", response.headers.get("x-ishan-coordinator", ""), flush=True)
            if response.status_code != 200:
                print("error", response.status_code, response.read().decode()[:300], flush=True)
                return
            for line in response.iter_lines():
                if line.startswith("data: "):
                    print("data", line[6:], flush=True)
    except httpx.HTTPError as exc:
        print("error", repr(exc), flush=True)
        return
    print("end", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
