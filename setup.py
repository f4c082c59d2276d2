"""Builds the one C extension (the RecordBatch record walk); everything else is in pyproject.toml.

``optional``: without a C compiler the install still succeeds and gafka runs the same checks in Python
(``gafka.protocol.record_batch.SPEEDUPS`` tells which is in use).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gafka.protocol._crecords",
            ["client/gafka/protocol/_crecords.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
