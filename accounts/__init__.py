"""Users, their roles and the sites they work for."""
