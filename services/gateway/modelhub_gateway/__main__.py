from modelhub_gateway.app import main

main()
