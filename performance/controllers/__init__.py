"""How a performer steers the set: OSC and keyboard, both turned into `Command` messages."""
