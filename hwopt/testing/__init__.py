"""Test support shipped with hwopt: a generator of valid quantized TFLite models."""
