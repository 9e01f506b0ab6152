"""Thin training over TRL: SFT, DPO and model merging from releases; safety preference pairs."""
