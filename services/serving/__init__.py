"""The serving service (see ARCHITECTURE.md); its operations arrive with their issue."""
