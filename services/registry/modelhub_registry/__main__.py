from modelhub_registry.app import main

main()
