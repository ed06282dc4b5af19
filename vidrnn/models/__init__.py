"""Temporal models over per-frame CNN features: the recurrent encoder, and the heads built on it."""
