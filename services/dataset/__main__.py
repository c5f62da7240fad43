"""`python -m services.dataset`: runs the dataset service."""

from services.dataset.app import main

main()
