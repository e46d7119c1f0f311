"""County CA, device identities, broker config, SD-card bundles, commissioning."""

__version__ = "0.1.0"
