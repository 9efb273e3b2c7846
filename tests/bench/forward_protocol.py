"""The --serve side of tests/bench/compare_forwards.py, shared by the reference scripts: after a
warm-up print "ready", then run one forward per line read from stdin and print its wall time in ms
(the protocol of build/bin/model_forwards)."""
import sys
import time


def serve(forward):
    forward()  # warm-up
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        forward()
        print(f"{1000 * (time.perf_counter() - start):.1f}", flush=True)
