"""Exact mode: libvmaf's integer (fixed-point) feature extractors reproduced in PyTorch."""
