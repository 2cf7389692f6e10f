from modelhub.cli import main

main()
