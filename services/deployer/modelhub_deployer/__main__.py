"""`python -m modelhub_deployer`: run the deployer service until SIGINT/SIGTERM."""

from modelhub_deployer.app import main

if __name__ == "__main__":
    main()
