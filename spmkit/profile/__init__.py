"""Measuring models: FLOPs/MACs (``flops``), and in later modules latency, memory and traces."""
