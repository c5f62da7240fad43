"""The training service (see ARCHITECTURE.md); its operations arrive with their issue."""
