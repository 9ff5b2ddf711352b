"""Turn an uploaded folder into runnable code: validate and unpack bundles, build environments."""
