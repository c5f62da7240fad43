"""`python -m services.training`: runs the training service."""

from services.training.app import main

main()
