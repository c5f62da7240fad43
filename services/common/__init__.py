"""What every customlabels service shares: config, errors, server start-up, DB pool, object store, ARNs, pages."""
