"""Analysis layer: weight layers, statistics, memory planning and size measures over the IR."""
