"""python3 -m agentfleet.ollama URL MODEL PROMPT: one non-streaming generate call, answer on stdout."""

from __future__ import annotations

import json
import sys
import urllib.request


def main() -> int:
    url, model, prompt = sys.argv[1:4]
    body = json.dumps({"model": model, "prompt": prompt, "stream": False}).encode()
    request = urllib.request.Request(f"{url.rstrip('/')}/api/generate", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:  # noqa: S310 (URL comes from the agent model)
        answer = json.load(response)
    sys.stdout.write(str(answer.get("response", "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
