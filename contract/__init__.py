"""What every part agrees on: the wire schema, hashing, body landmarks, label maps, sd_notify and the
bundle manifest. Imports nothing from edge, collector, training, export or edgescreen."""
