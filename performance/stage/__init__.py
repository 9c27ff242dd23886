"""What the audience sees: the look of a scene, the reducer from events to a view, the drawing."""
