#!/usr/bin/python3
"""feu's e4e or CLIP image tower against the reference on this machine, a forward at a time.

Starts build/bin/model_forwards --model M and the reference's --serve side
(tests/bench/reference_e4e.py or reference_clip_image.py; both at the released
sizes with random weights, the same batch and threads), then
alternates single forwards between them, swapping which goes first every
round, and reports the ratio feu / reference of each round's pair. A shared
VM's speed drifts by ±20% between minutes; two adjacent forwards see nearly
the same machine, so the paired ratios spread far less than separate runs.

    /usr/bin/python3 tests/bench/compare_forwards.py --model e4e|clip_image|clip_image_gemms [--rounds 20] [--batch 1] [--threads 2]

With --baseline PATH the other side is another build's model_forwards
instead of the reference (before/after a change: a change worth 1-2% shows
there, where runs against the reference spread by ±3% between minutes).
"""
import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# clip_image_gemms: only the tower's GEMMs on feu's side (see model_forwards.cpp), against the whole reference.
REFERENCES = {"e4e": "reference_e4e.py", "clip_image": "reference_clip_image.py",
              "clip_image_gemms": "reference_clip_image.py"}


def start(command):
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    line = process.stdout.readline().strip()
    if line != "ready":
        sys.exit(f"{command[0]} did not start: {line!r}")
    return process


def forward(process):
    process.stdin.write("go\n")
    process.stdin.flush()
    return float(process.stdout.readline())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(REFERENCES), required=True)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--feu", default=os.path.join(ROOT, "build", "bin", "model_forwards"))
    parser.add_argument("--baseline", help="another build's model_forwards, in the reference's place")
    args = parser.parse_args()
    common = ["--batch", str(args.batch), "--threads", str(args.threads)]
    ours = start([args.feu, "--model", args.model] + common)
    if args.baseline:
        reference = start([args.baseline, "--model", args.model] + common)
    else:
        reference = start([sys.executable, os.path.join(HERE, REFERENCES[args.model]), "--serve"] + common)
    other = "baseline" if args.baseline else "reference"
    ratios, ours_ms, reference_ms = [], [], []
    for round_index in range(args.rounds):
        if round_index % 2 == 0:
            a, b = forward(ours), forward(reference)
        else:
            b, a = forward(reference), forward(ours)
        ours_ms.append(a / args.batch)
        reference_ms.append(b / args.batch)
        ratios.append(a / b)
        print(f"round {round_index + 1}: feu {a / args.batch:.0f} ms, {other} {b / args.batch:.0f} ms per image, "
              f"ratio {a / b:.3f}", flush=True)
    for process in (ours, reference):
        process.stdin.close()
        process.wait()
    quartiles = statistics.quantiles(ratios, n=4)
    print(f"{args.model} batch {args.batch}, {args.threads} threads, {args.rounds} rounds: feu median "
          f"{statistics.median(ours_ms):.0f} ms, {other} median {statistics.median(reference_ms):.0f} ms per image; "
          f"ratio feu/{other} median {statistics.median(ratios):.3f} "
          f"(quartiles {quartiles[0]:.3f}–{quartiles[2]:.3f}, range {min(ratios):.3f}–{max(ratios):.3f})")


if __name__ == "__main__":
    main()
