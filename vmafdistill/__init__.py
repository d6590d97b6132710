"""vmafdistill: distil the VMAF video-quality metric into tiny students for CPU edge serving.

The base install is the torch-free edge runtime. The teacher (VMAF in PyTorch), corpus building and
training live behind the ``teacher`` / ``train`` extras and are imported lazily.
"""

__version__ = "0.1.0"
