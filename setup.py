"""The compiled part of micrec: an optional capture loop for the pulse backend (Linux only).

Everything else is in pyproject.toml. The loop (csrc/pulseloop.c) uses neither Python's nor
libpulse's API, so one build serves every Python from 3.11 (abi3); without a C compiler the
build goes on without it and the backend reads in Python (micrec.backends._pulseloop).
"""

import sys

from setuptools import Extension, setup

extensions = []
if sys.platform.startswith("linux"):
    extensions.append(Extension("micrec.backends._pulseloop_c", ["csrc/pulseloop.c"], optional=True,
                                py_limited_api=True))

# One wheel for every Python from 3.11 (the loop calls no Python API); pure when there is no loop.
options = {"bdist_wheel": {"py_limited_api": "cp311"}} if extensions else {}
setup(ext_modules=extensions, options=options)
