"""Every place modelhub goes around a framework instead of through it, one module per library.

Each module says which upstream behaviour it works around, in which pinned versions, and what
would let it go; its functions are called explicitly by the service that needs them (nothing is
patched on import), and `tests/unit/test_adapters_*.py` fails when upstream changes what the
module relies on or fixes what it works around.
"""
