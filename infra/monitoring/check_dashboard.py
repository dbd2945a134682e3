"""Checks a Grafana dashboard JSON against Grafana's own dashboard models
(grafana-foundation-sdk): the document must decode, and every key it holds must survive
decoding and encoding again. The models ignore keys they do not know, so a misspelled
key ("tragets") would otherwise vanish silently; here it is reported with its JSON path.

Usage: python check_dashboard.py DASHBOARD.json   (exit 0 ok, 1 keys lost, 2 unreadable)
"""
import json
import sys

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

# Keys the models do not carry at all; Grafana itself ignores or regenerates them.
IGNORED = {"$schema"}


def paths(value, at="$"):
    if isinstance(value, dict):
        for k, v in value.items():
            if k in IGNORED:
                continue
            yield f"{at}.{k}"
            yield from paths(v, f"{at}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, f"{at}[{i}]")


def main(path):
    try:
        with open(path, encoding="utf-8") as f:
            written = json.load(f)
        decoded = Dashboard.from_json(written)
    except Exception as e:  # noqa: BLE001 - any failure to read is the answer
        print(f"{path}: not a Grafana dashboard: {e}")
        return 2
    read_back = json.loads(json.dumps(decoded, cls=JSONEncoder))
    lost = sorted(set(paths(written)) - set(paths(read_back)))
    if lost:
        print(f"{path}: keys Grafana's dashboard model does not know (or misplaced):")
        for p in lost:
            print(f"  {p}")
        return 1
    panels = len(written.get("panels", []))
    print(f"{path}: a Grafana dashboard, {panels} panels, every key known to the model")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
