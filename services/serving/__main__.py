"""`python -m services.serving`: runs the serving service."""

from services.serving.app import main

main()
