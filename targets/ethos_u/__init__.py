"""Ethos-U55/U65/U85 backends: Vela compile, weight encoding, cost model."""
