"""DE toolbox: settings, contracts, ingestion, the simulator, loaders, assets and notifiers."""
