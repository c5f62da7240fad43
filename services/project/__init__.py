"""The project service: projects, tags on every resource of ours, and project policies."""
