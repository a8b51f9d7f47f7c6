"""Paillier keys, fixed-point encodings and encryption randomness.

Importing the package is cheap (nothing but this docstring), so pool workers that preload
`fedviz.crypto.obfuscators` start fast.
"""
