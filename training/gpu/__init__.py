"""The GPU campaign (issue 13 item 6): `pack.py` runs on the workstation, `campaign.py` on a lent GPU host.

Nothing in this package imports TensorFlow: the GPU host has Keras on JAX only.
"""
