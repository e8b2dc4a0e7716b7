#!/usr/bin/env python3
"""P5b table (BENCHMARKS.md, "Amnesiac under its authors' protocol"): for each method of a
class-forgetting grid, the forgotten class's test accuracy, the other classes' test accuracy,
the forget-set accuracy (the training samples of the class) and TA, mean ± std over seeds,
read from results/NAME/runs.jsonl.

Usage: scripts/p5b_table.py results/NAME [results/NAME2 ...]

"Other classes" is the mean of the other classes' per-class test accuracies, which is the
accuracy on the other classes' test images when every class has as many test images (1,000 each
in Fashion-MNIST)."""
import json
import statistics
import sys


def stat(values):
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return "%.2f ± %.2f" % (mean, std)


def table(directory):
    runs = [json.loads(line) for line in open(directory + "/runs.jsonl") if line.strip()]
    if not runs:
        sys.exit(f"{directory}: no runs")
    order, rows = [], {}
    for run in runs:
        kind, _, value = run["forget"].partition(":")
        if kind != "class":
            sys.exit(f"{directory}: forget set {run['forget']} is not a class")
        forgotten = int(value)
        per_class = run["evaluation"]["test_per_class"]
        others = [a for c, a in enumerate(per_class) if c != forgotten and a is not None]
        headline = run["evaluation"]["headline"]
        if run["method"] not in rows:
            order.append(run["method"])
            rows[run["method"]] = []
        rows[run["method"]].append(
            (
                per_class[forgotten],
                statistics.fmean(others),
                100.0 - headline["unlearn_accuracy"],
                headline["test_accuracy"],
                run["seed"],
            )
        )
    first = runs[0]
    seeds = sorted({row[4] for row in rows["original"]}) if "original" in rows else []
    print(f"{directory}: data `{first['data']}`, model `{first['model']}`, forget "
          f"`{first['forget']}` ({first['sizes'][0]} samples), seeds {seeds}\n")
    print(f"| method | class {forgotten} test acc. | other classes test acc. | "
          f"forget-set acc. | TA | seeds |")
    print("|---|---:|---:|---:|---:|---:|")
    for method in order:
        values = rows[method]
        columns = [stat([v[i] for v in values]) for i in range(4)]
        print(f"| {method} | " + " | ".join(columns) + f" | {len(values)} |")
    print()


for directory in sys.argv[1:] or sys.exit(__doc__):
    table(directory.rstrip("/"))
