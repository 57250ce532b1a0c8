"""Arm Ethos-N78 target support: hardware variants and the weight-stream encoder/decoder."""
