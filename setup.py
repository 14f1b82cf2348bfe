"""Packaging for mediaworker: the worker, the shared channel module and the Python controller.

The C hot path lives in ``cffi_build/`` and is compiled by cffi through ``cffi_modules``, so
``pip install -e .`` on a machine with a C compiler yields a working worker.
"""

from setuptools import setup

setup(
    name="mediaworker",
    version="0.1.0",
    description="A mediasoup-style SFU worker process in Python, driven over a msgpack channel",
    python_requires=">=3.11",
    packages=["worker", "channel", "controller"],
    package_data={"worker": ["py.typed"], "channel": ["py.typed"], "controller": ["py.typed"]},
    setup_requires=["cffi>=1.17"],
    cffi_modules=["cffi_build/build_fast.py:ffibuilder"],
    install_requires=[
        "uvloop>=0.19",
        "cffi>=1.17",
        "msgpack>=1.0.5",
        "pylibsrtp==1.0.0",
        "pyOpenSSL>=24.0",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "aiortc>=1.9",
            "aioice>=0.9",
            "pymediasoup>=1.5,<2",
            "psutil>=5.9",
            "ruff>=0.5",
            "mypy>=1.10",
            "pyperf>=2.6",
        ],
        "perf": ["pyperf>=2.6"],
    },
)
