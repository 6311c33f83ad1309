"""Benchmarks for sayna-sip: `python -m bench.run [--quick|--smoke]`.

Everything runs on this machine as separate processes: a real nats-server, the
services (`sayna-sip ingress|router|forwarder`), a local HTTPS sink, the baselines and a
load generator. Each figure is measured next to its baseline in the same run, and the
results go to `bench/results/<date>.json` plus a PNG plot. See docs/performance.md.
"""
