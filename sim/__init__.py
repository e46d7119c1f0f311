"""``xl-sim``: a fleet of simulated devices for load and soak tests."""
