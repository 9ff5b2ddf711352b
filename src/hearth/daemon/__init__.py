"""hearthd: wires the store, builder, supervisor, gateway and API into one asyncio process."""
