"""The generator worker: owns the models, streams tokens ahead of the stage under credit."""
