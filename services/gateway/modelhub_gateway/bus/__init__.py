"""The gateway on NATS: its entry points (`handlers`: the progress consumers; `external`: commands
from other systems) and what it sends (`sends`: declared publishers and the use cases' `Publish`;
`rpc`: requests to other services).

The entry points call use cases at the package top, never an HTTP route; use cases may send
through `sends` and `rpc`, never import an entry point.
"""
