"""What the show is: configuration, clock, programs and timeline (the engine's foundations)."""
