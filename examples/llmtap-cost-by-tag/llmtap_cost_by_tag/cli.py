"""``llmtap-cost-by-tag``: print cost per tag over the last hours (the plugin's CLI hook)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import redis

from llmtap.embedded import default_redis_url
from llmtap.settings import Settings, redact_url
from llmtap_cost_by_tag.read import cost_by_tag


def main(argv: Sequence[str] | None = None) -> int:
    """Print cost per tag as JSON; return the exit code (1 when Redis cannot be reached)."""
    parser = argparse.ArgumentParser(prog="llmtap-cost-by-tag", description=__doc__)
    parser.add_argument("--hours", type=float, default=24.0, help="how far back (default 24)")
    parser.add_argument("--key", help="only this tag key (e.g. feature)")
    parser.add_argument("--url", help="Redis URL (default: LLMTAP_REDIS_URL, or `llmtap up`'s)")
    args = parser.parse_args(argv)
    url = args.url or Settings.from_env().redis_url or default_redis_url()
    now = time.time()
    client = redis.Redis.from_url(url)
    try:
        rows = cost_by_tag(client, now - args.hours * 3600, now, key=args.key)
    except redis.RedisError as exc:
        print(f"llmtap-cost-by-tag: cannot read {redact_url(url)}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
