"""The hub side of Flightbase: authenticator, roles and the config mapping."""
