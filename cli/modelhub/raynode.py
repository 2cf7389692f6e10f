"""`ray start` for a replica node of the embedded stack, joining a head on 127.0.0.1.

Ray on Linux rewrites a loopback `--address` (127.0.0.1, localhost) to the machine's routable IP,
where the embedded head does not listen (it binds 127.0.0.1 only); with that rewrite switched off
(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, as the head and the services run), `ray start --address`
refuses to start a worker node at all. So this keeps the address as given and runs Ray's own
`ray start` otherwise unchanged. Nodes on other machines use plain `ray start` (docs/operations.md).
"""

import sys


def main() -> None:
    import ray._private.services as services
    from ray.scripts.scripts import main as ray_main

    services.resolve_ip_for_localhost = lambda host: host
    sys.argv = ["ray", *sys.argv[1:]]
    ray_main()


if __name__ == "__main__":
    main()
