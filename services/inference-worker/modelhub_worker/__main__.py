from modelhub_worker.app import main

main()
