"""Benchmarks behind tools/benchmark.py beyond a single config's throughput.

--compare-torchvision: detseg beside torchvision and the tools around the model (compare, overhead,
eval_speed, data_wait, memory, gpu; suite runs them, report checks the goals and prints PASS/MISS).
--zoo: every architecture trained and evaluated on the shapes data (zoo, zoo_report, zoo_plot).
"""
