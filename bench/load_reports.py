"""Reports load process: timed GETs of each page, one at a time over one
keep-alive connection, as a lead (``python -m bench.load_reports CONFIG OUT``).
The baselines (``/healthz``, the inbox's first page) are timed in the same
loop, so their ratios compare like with like."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bench.load_scale import timed_gets


async def main(config: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"pages": {}}
    async with aiohttp.ClientSession(
        cookies={"sessionid": config["session"]},
        connector=aiohttp.TCPConnector(limit=1),
        timeout=aiohttp.ClientTimeout(total=60),
    ) as http:
        for label, path in config["pages"]:
            result["pages"][label] = await timed_gets(
                http,
                config["base"] + path,
                count=config["requests"],
                warmup=config["warmup"],
            ) | {"path": path}
    return result


if __name__ == "__main__":
    config = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps(asyncio.run(main(config))))
