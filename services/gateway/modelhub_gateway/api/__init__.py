"""The HTTP entry points: the routes, their dependencies (who is asking, what they may see), the
limits and gates in front of them, and the lean ASGI path of online predict.

An entry point parses, authorizes and answers; the work is a use case at the package top, which
the bus's entry points (`modelhub_gateway.bus`) call too. Nothing here imports those, nor they this.
"""
