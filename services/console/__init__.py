"""The web console: label, train, evaluate and try models in a browser (services/console/README.md)."""
