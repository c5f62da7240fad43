"""`python -m services.console`: the console process."""

from services.console.app import main

if __name__ == "__main__":
    main()
