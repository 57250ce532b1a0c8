"""Engines: the commands as functions (audit, encode, estimate, enforce, compile, gate, fidelity)."""
