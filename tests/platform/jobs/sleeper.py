"""Sleeps (or until SIGTERM, which it acknowledges like a job that checkpoints)."""
import argparse
import signal
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--seconds", type=float, default=600)
args = p.parse_args()


def stop(signum, frame):
    print("got SIGTERM: checkpointing and leaving", flush=True)
    sys.exit(143)


signal.signal(signal.SIGTERM, stop)
print("sleeping", flush=True)
time.sleep(args.seconds)
print("woke up", flush=True)
