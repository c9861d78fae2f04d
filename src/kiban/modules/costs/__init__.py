"""Cost allocation (負担金の算定), simulation and 見える化 for common services."""
