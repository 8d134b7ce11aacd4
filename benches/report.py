#!/usr/bin/env python3
"""Turns criterion's estimates into the BENCHMARKS.md tables.

Each argument is one criterion output directory (one build, one process). Added cost is
the variant's mean minus `bare` from the same directory (an `async_` row: minus
`async_bare`, an `async_await_` row: minus `async_await_bare`); the ratio divides it by
`hand_written`'s added cost from the same directory."""
import json
import pathlib
import sys


def mean(path):
    return json.loads(path.read_text())["mean"]["point_estimate"]


def table(root):
    root = pathlib.Path(root)
    rows = []
    for group in ("one_thread", "two_threads"):
        gdir = root / group
        if not gdir.is_dir():
            continue
        est = {d.name: mean(d / "new" / "estimates.json")
               for d in sorted(gdir.iterdir()) if (d / "new" / "estimates.json").exists()}
        bare = est["bare"]
        hand = est["hand_written"] - bare
        for name, value in est.items():
            base = bare
            for prefix in ("async_await_", "async_"):
                if name.startswith(prefix) and f"{prefix}bare" in est:
                    base = est[f"{prefix}bare"]
                    break
            added = value - base
            rows.append((group, name, value, added, added / hand if hand > 0 else float("nan")))
    return rows


def http_table(root):
    gdir = pathlib.Path(root) / "http_request"
    est = {d.name: mean(d / "new" / "estimates.json")
           for d in sorted(gdir.iterdir()) if (d / "new" / "estimates.json").exists()}
    bare = est["bare"]
    prom = est["actix_web_prom"] - bare
    print("\n#### http_request (in-process, actix-web test harness)\n")
    print("| middleware | ns/request | added ns | added ÷ actix-web-prom added |")
    print("|---|---:|---:|---:|")
    for name, value in sorted(est.items(), key=lambda kv: kv[1]):
        added = value - bare
        print(f"| {name} | {value:.0f} | {added:.0f} | {added / prom:.2f} |")


def http_traced_table(root):
    """The otel bench's `http_traced` group: added ns over bare, per trace flag."""
    gdir = pathlib.Path(root) / "http_traced"
    est = {d.name: mean(d / "new" / "estimates.json")
           for d in sorted(gdir.iterdir()) if (d / "new" / "estimates.json").exists()}
    print("\n#### http_traced (in-process, observe's layer, spans dropped)\n")
    print("| | sampled: added ns | unsampled: added ns |")
    print("|---|---:|---:|")
    for name in ("observe_middleware", "tracing_actix_web"):
        added = [est[f"{trace}_{name}"] - est[f"{trace}_bare"] for trace in ("sampled", "unsampled")]
        print(f"| {name} | {added[0]:,.0f} | {added[1]:,.0f} |")


def main():
    if sys.argv[1] == "--http":
        http_table(sys.argv[2])
        return
    if sys.argv[1] == "--http-traced":
        http_traced_table(sys.argv[2])
        return
    for root in sys.argv[1:]:
        print(f"\n#### {pathlib.Path(root).name}\n")
        print("| threads | variant | ns/call | added ns | added ÷ hand-written added |")
        print("|---|---|---:|---:|---:|")
        for group, name, value, added, ratio in table(root):
            print(f"| {group} | {name} | {value:.1f} | {added:.1f} | {ratio:.2f} |")
    # Contention: per-call cost on two threads over one thread, same build.
    root = pathlib.Path(sys.argv[1])
    one = {n: v for g, n, v, _, _ in table(root) if g == "one_thread"}
    two = {n: v for g, n, v, _, _ in table(root) if g == "two_threads"}
    print(f"\n#### contention ({root.name}): two threads ÷ one thread, per call\n")
    print("| variant | ratio |")
    print("|---|---:|")
    for name in one:
        if name in two:
            print(f"| {name} | {two[name] / one[name]:.2f} |")


if __name__ == "__main__":
    main()
