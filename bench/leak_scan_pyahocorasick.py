#!/usr/bin/env python3
"""Leak scanning in Python with pyahocorasick, for comparison with vaia's Rust scanner.

Reads the data set the Rust benchmark writes (target/bench-data/leak_responses.jsonl: a
first line with the canaries, then one response per line), builds one Aho-Corasick
automaton over the same encoded forms of each canary that vaia matches on the raw and
normalised text (the canary, its lowercase, rot13, reversal, hex, and the base64 cores at
the three alignments), scans every response (raw and lowercased, whitespace removed) and
reports MB/s over the best of several runs.

    python3 -m venv .venv && .venv/bin/pip install pyahocorasick
    cargo bench -p vaia-bench --bench agent_gates      # writes the data set
    .venv/bin/python bench/leak_scan_pyahocorasick.py target/bench-data/leak_responses.jsonl
"""
import base64
import codecs
import json
import sys
import time

import ahocorasick


def b64_cores(secret: bytes):
    out = set()
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        for k in range(3):
            buf = b"\0" * k + secret
            first = -(-k // 3)
            last = len(buf) // 3
            if last <= first + 1:
                continue
            core = enc(buf[first * 3:last * 3]).decode()
            if len(core) >= 8:
                out.add(core)
    return out


def main(path):
    with open(path, encoding="utf-8") as f:
        canaries = json.loads(f.readline())["canaries"]
        responses = [json.loads(line)["response"] for line in f]
    exact = ahocorasick.Automaton()
    folded = ahocorasick.Automaton()
    for i, c in enumerate(canaries):
        exact.add_word(c, (i, "exact"))
        for core in b64_cores(c.encode()):
            exact.add_word(core, (i, "base64"))
        for form, det in ((c.lower(), "normalised"), (codecs.encode(c, "rot13").lower(), "rot13"),
                          (c[::-1].lower(), "reversed"), (c.encode().hex(), "hex")):
            folded.add_word(form, (i, det))
    exact.make_automaton()
    folded.make_automaton()
    total = sum(len(r.encode()) for r in responses)

    def scan():
        leaks = 0
        for r in responses:
            found = set()
            for _, (i, _det) in exact.iter(r):
                found.add(i)
            norm = "".join(r.split()).lower()
            for _, (i, _det) in folded.iter(norm):
                found.add(i)
            leaks += len(found)
        return leaks

    best = float("inf")
    leaks = 0
    for _ in range(5):
        t = time.perf_counter()
        leaks = scan()
        best = min(best, time.perf_counter() - t)
    print(f"responses={len(responses)} bytes={total} leaks={leaks} best={best*1000:.1f} ms "
          f"throughput={total / best / 1e6:.1f} MB/s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/bench-data/leak_responses.jsonl")
