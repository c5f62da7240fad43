"""`python -m services.project`: runs the project service."""

from services.project.app import main

main()
