"""The `customlabels` command-line client: one command per RPC of the four services (see __main__)."""
