"""modelhub's shared contracts: the only code that services share.

Events, commands, subjects, the model-schema meta-schema, settings and NATS helpers.
No service imports another service; they integrate through what is defined here.
"""
