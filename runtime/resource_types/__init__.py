"""Resource types, found through the entry-point group ``wolfpack.resource_types``."""
