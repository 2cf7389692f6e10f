"""The API's routes, one module per resource (users, models, deployments, datasets, jobs, predict,
health, the bus contract's page); each route calls a use case and shapes its answer."""
