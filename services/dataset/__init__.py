"""The dataset service (see ARCHITECTURE.md); its operations arrive with their issue."""
