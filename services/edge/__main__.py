"""`python -m services.edge`: runs the HTTP edge."""

from services.edge.app import main

main()
