from modelhub_scheduler.app import main

main()
