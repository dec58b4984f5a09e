"""The benchmark harness: `make bench` (= `python -m benchmarks.run`) measures fine-tuning
time-to-accuracy, tokenization throughput, pretraining FLOP utilisation, pipeline overhead and
the demo's wall time in one run, and writes results/bench.json and results/bench.md.

It reports; it never fails on a missed goal (the goals are in the table, met or not)."""
